"""`cheartflow train`, `train-baseline` and `train-seg`: configs from presets and `--set`, then the trainers."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any, Sequence

from ..errors import InvalidInputError
from .data import load_split, load_training_set
from .options import add_training_options, parse_overrides, run_length

log = logging.getLogger("cheartflow")

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # ~5.6M parameters, 10.7 MiB in fp16
    "small": {"base_channels": 16, "time_embed_dim": 64},
    # the FLOPs per image of "small" (~3.7 GFLOP at 128x128) with 3.8x the parameters: levels at half resolution, twice as wide
    "small-patch2": {"base_channels": 32, "time_embed_dim": 64, "patch_size": 2},
    "tiny": {"base_channels": 8, "channel_mult": (1, 2), "attention_levels": (1,), "time_embed_dim": 32, "groups": 4},
}


def build_configs(preset: str, sketch: str, resolution: int, overrides: Sequence[str]):
    """ModelConfig and TrainConfig from a preset plus `field=value` overrides (either config's fields)."""
    from ..config import ModelConfig, TrainConfig

    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = parse_overrides(overrides, model_fields | train_fields, prefixes=("model.", "train."))
    model_kw: dict[str, Any] = {**PRESETS[preset], "sketch_kind": sketch, "resolution": resolution}
    model_kw.update({k: v for k, v in values.items() if k in model_fields})
    return ModelConfig(**model_kw), TrainConfig(**{k: v for k, v in values.items() if k not in model_fields})


def _validation_data(args: argparse.Namespace):
    """`train --val`: a packed val .npz or an ACDC folder (its val split); an ACDC --data brings its own val split."""
    if args.no_val:
        return None
    source = args.val or (None if args.data.endswith(".npz") else args.data)
    if source is None:
        log.warning("no validation data (--val): the final checkpoint is not chosen on val")
        return None
    try:
        val = load_training_set(source, args.sketch, args.resolution, split="val")
    except InvalidInputError as exc:
        if args.val:
            raise
        log.warning("%s has no usable val split (%s): the final checkpoint is not chosen on val", source, exc)
        return None
    log.info("choosing checkpoints on %d val slices from %s (best kept in %s/best)", len(val[0]), source, args.out)
    return val


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import read_config
    from ..training import data_scales, train

    model_cfg, train_cfg = build_configs(args.preset, args.sketch, args.resolution, args.set)
    train_cfg = dataclasses.replace(train_cfg, **run_length(args))
    images, sketches = load_training_set(args.data, args.sketch, args.resolution)
    if args.init_from:
        model_cfg = read_config(args.init_from)[0]  # the architecture and scales of the weights we continue from
    elif model_cfg.preconditioning == "bridge" and not any(s.split("=")[0].endswith(("sigma_x0", "sigma_x1")) for s in args.set):
        model_cfg = data_scales(model_cfg, images, sketches)
        log.info("bridge preconditioning: sigma_x0 %.4f, sigma_x1 %.4f (stds of the training images and sketches)",
                 model_cfg.sigma_x0, model_cfg.sigma_x1)
    log.info("training on %d slices (%s sketches, %dpx) into %s", len(images), args.sketch, args.resolution, args.out)
    val = _validation_data(args)
    _, results = train(images, sketches, model_cfg, train_cfg, args.out, device=args.device,
                       resume=not args.no_resume, time_limit_s=args.time_limit, progress=not args.quiet, val=val,
                       init_from=args.init_from)
    if results:
        log.info("step %d, loss %.5f; model written to %s", results[-1].step, results[-1].loss, args.out)
    return 0


def cmd_train_baseline(args: argparse.Namespace) -> int:
    from ..research.baselines import config_fields, default_config, train_baseline

    overrides: dict[str, Any] = {"sketch_kind": args.sketch, "resolution": args.resolution,
                                 **parse_overrides(args.set, config_fields(args.kind)), **run_length(args)}
    cfg = default_config(args.kind, **overrides)
    images, sketches = load_training_set(args.data, args.sketch, args.resolution)
    log.info("training %s on %d slices into %s", args.kind, len(images), args.out)
    train_baseline(args.kind, images, sketches, args.out, cfg, device=args.device, time_limit_s=args.time_limit,
                   resume=not args.no_resume, progress=not args.quiet)
    return 0


def cmd_train_seg(args: argparse.Namespace) -> int:
    from ..research.segmentation import SegmenterConfig, SegTrainConfig, train_segmenter

    fields = {f.name for f in dataclasses.fields(SegTrainConfig)}
    train_kw = {**parse_overrides(args.set, fields), **run_length(args)}
    train = load_split(args.data, "train", args.resolution)
    val = load_split(args.val or args.data, "val", args.resolution) if not args.data.endswith(".npz") or args.val else None
    _, results = train_segmenter(train.images, train.labels, SegmenterConfig(resolution=args.resolution),
                                 SegTrainConfig(**train_kw), args.out, device=args.device,
                                 val=(val.images, val.labels) if val is not None else None,
                                 time_limit_s=args.time_limit, progress=not args.quiet)
    dice = [r.val_dice for r in results if r.val_dice is not None]
    log.info("segmenter written to %s%s", args.out, f"; validation Dice {dice[-1]:.3f}" if dice else "")
    return 0


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train an encoder on ACDC (or a packed .npz of slices)")
    t.add_argument("--data", required=True, help="ACDC root folder (with splits.json) or a .npz from cf.data.save_slices")
    t.add_argument("--out", required=True, help="run folder: model.safetensors, config.json, metrics.jsonl, train_state/")
    t.add_argument("--sketch", choices=("edges", "labels"), default="edges")
    t.add_argument("--resolution", type=int, default=128)
    t.add_argument("--preset", choices=sorted(PRESETS), default="default")
    add_training_options(t, "override any ModelConfig/TrainConfig field", "total optimizer steps (TrainConfig.steps)",
                         "stop (and checkpoint) after this many seconds; rerun to resume",
                         resume_help="start over even if --out holds a training state")
    t.add_argument("--init-from", metavar="MODEL_DIR",
                   help="continue from a trained model's weights, steps and minutes when --out holds no training state "
                        "(e.g. the bundled model, when its run folder is gone); the optimizer starts afresh")
    t.add_argument("--val", help="validation data scored at every checkpoint, best kept in OUT/best: a packed val .npz "
                                 "or an ACDC folder (default: the val split of an ACDC --data)")
    t.add_argument("--no-val", action="store_true", help="do not score checkpoints on val")
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("train-baseline", help="train a Table-1 baseline (pix2pix or iDDPM) on the same data")
    b.add_argument("--kind", required=True, choices=("pix2pix", "iddpm"))
    b.add_argument("--data", required=True, help="ACDC root folder or a .npz from `cheartflow pack`")
    b.add_argument("--out", required=True, help="run folder (resumable: rerun the same command to continue)")
    b.add_argument("--sketch", choices=("edges", "labels"), default="edges")
    b.add_argument("--resolution", type=int, default=128)
    add_training_options(b, "override a baseline config field", time_limit_help="stop (and checkpoint) after this many seconds")
    b.set_defaults(func=cmd_train_baseline)

    g = sub.add_parser("train-seg", help="train the evaluation segmenter (seg-Dice, Frechet-seg) on ACDC train/val")
    g.add_argument("--data", required=True, help="ACDC root folder (train + val splits) or a packed train .npz")
    g.add_argument("--val", help="packed val .npz when --data is a .npz")
    g.add_argument("--out", required=True)
    g.add_argument("--resolution", type=int, default=128)
    add_training_options(g, "override a SegTrainConfig field", resume=False)
    g.set_defaults(func=cmd_train_seg)
