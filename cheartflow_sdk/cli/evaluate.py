"""`cheartflow eval`: SSIM / PSNR (+ seg-Dice, Frechet-seg, FID, LPIPS) of a model on an ACDC split."""

from __future__ import annotations

import argparse
import logging

from ..backends.registry import BACKENDS
from .data import load_split
from .options import parse_schedule

log = logging.getLogger("cheartflow")


def cmd_eval(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write_text
    from ..errors import ModelNotAvailableError
    from ..research.evaluation import Evaluator, pipeline_cache_key, pipeline_method, rows_to_json, sweep_t1
    from ..pipeline import load_pipeline
    from ..research.segmentation import load_segmenter

    pipe = load_pipeline(args.model, backend=args.backend, device=args.device, sketch_kind=args.sketch_kind)
    kind = pipe.config.sketch_kind
    slices = load_split(args.data, args.split, pipe.config.resolution)
    torch_device = "cuda" if args.device == "cuda" else "cpu"
    try:
        segmenter = load_segmenter(args.segmenter, torch_device)
    except ModelNotAvailableError as exc:
        log.warning("no segmenter, so no seg_dice / frechet_seg: %s", exc)
        segmenter = None
    ev = Evaluator(slices, segmenter=segmenter, inception_weights=args.inception_weights,
                   lpips_weights=args.lpips_weights, device=torch_device, split=args.split, cache=args.cache)
    schedule = parse_schedule(args.schedule)
    res = ev.evaluate(pipeline_method(pipe, args.steps, schedule, args.seed), f"cHeartFlow {args.steps}-step", kind,
                      args.steps, cache_key=pipeline_cache_key(pipe, args.steps, schedule, args.seed), seed=args.seed)
    rows = [res.row, ev.reference_row()]
    if args.t1_sweep:
        t1s = [float(v) for v in args.t1_sweep.split(",")]
        rows += [r.row for r in sweep_t1(ev, lambda t: pipeline_method(pipe, 2, (t,), args.seed), kind, t1s, sweep="t1",
                                         make_cache_key=lambda t: pipeline_cache_key(pipe, 2, (t,), args.seed))]
    for row in rows:
        metrics = ", ".join(f"{k} {row[k]:.4g}" for k in ("ssim", "psnr", "seg_dice", "frechet_seg", "fid", "lpips")
                            if isinstance(row.get(k), (int, float)))
        log.info("%s (%s, NFE %s, %s): %s", row["method"], row["sketch"], row["nfe"], row["split"], metrics)
    if args.json:
        atomic_write_text(args.json, rows_to_json(rows))
        log.info("wrote %s", args.json)
    return 0


def add_parsers(sub) -> None:
    q = sub.add_parser("eval", help="SSIM/PSNR (+ seg-Dice, Frechet-seg, FID, LPIPS) of a model on an ACDC split")
    q.add_argument("--data", required=True, help="ACDC root folder or a packed .npz of the split")
    q.add_argument("--split", choices=("train", "val", "test"), default="test")
    q.add_argument("--model", help="model folder or engine (default: the bundled model)")
    q.add_argument("--sketch-kind", choices=("edges", "labels"))
    q.add_argument("--steps", type=int, default=1)
    q.add_argument("--schedule", help="comma-separated t_k, steps-1 of them")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--segmenter", help="segmenter folder from `cheartflow train-seg` (default: the bundled one)")
    q.add_argument("--inception-weights", help="pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth) for FID")
    q.add_argument("--lpips-weights", help="lpips AlexNet v0.1 state dict for LPIPS")
    q.add_argument("--t1-sweep", help="comma-separated t_1 values: two-step faithfulness/realism sweep")
    q.add_argument("--cache", metavar="DIR", help="keep the synthesized images in DIR and reuse them when run again")
    q.add_argument("--backend", default="auto", choices=BACKENDS)
    q.add_argument("--device", default="auto")
    q.add_argument("--json", help="write the result rows here (JSON)")
    q.set_defaults(func=cmd_eval)
