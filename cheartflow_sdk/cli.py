"""`cheartflow` command line: a thin layer over the Python API (train, export, synth, demo)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .backends.registry import BACKENDS
from .errors import CheartflowError, InvalidInputError

log = logging.getLogger("cheartflow")

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # ~5.6M parameters, 10.7 MiB in fp16
    "small": {"base_channels": 16, "time_embed_dim": 64},
    "tiny": {"base_channels": 8, "channel_mult": (1, 2), "attention_levels": (1,), "time_embed_dim": 32, "groups": 4},
}


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        if "," in raw:
            return [_parse_value(part) for part in raw.split(",")]
        return raw


def build_configs(preset: str, sketch: str, resolution: int, overrides: Sequence[str]):
    """ModelConfig and TrainConfig from a preset plus `field=value` overrides (either config's fields)."""
    from .config import ModelConfig, TrainConfig

    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_kw: dict[str, Any] = {**PRESETS[preset], "sketch_kind": sketch, "resolution": resolution}
    train_kw: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.removeprefix("model.").removeprefix("train.")
        if not sep or key not in model_fields | train_fields:
            raise CheartflowError(f"--set expects FIELD=VALUE with FIELD one of {sorted(model_fields | train_fields)}; got {item!r}")
        (model_kw if key in model_fields else train_kw)[key] = _parse_value(raw)
    return ModelConfig(**model_kw), TrainConfig(**train_kw)


def load_split(data: str, split: str, resolution: int):
    """A SliceSet of `split` at `resolution` from an ACDC folder, or from a packed .npz (its one split)."""
    from .data import PreprocessConfig, load_acdc, load_slices

    slices = load_slices(data) if data.endswith(".npz") else load_acdc(data, split, config=PreprocessConfig(size=resolution))
    if slices.images.shape[-1] != resolution:
        raise CheartflowError(f"{data} holds {slices.images.shape[-1]}px slices but resolution={resolution} was asked for")
    return slices


def load_training_set(data: str, sketch: str, resolution: int, split: str = "train"):
    """(images [N,1,R,R] in [-1,1], sketches [N,1,R,R] in [0,1]) from an ACDC folder or a packed .npz."""
    from .sketch import make_sketch

    slices = load_split(data, split, resolution)
    images = slices.images.astype("float32")
    return images, make_sketch(sketch, images=images, labels=slices.labels)


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
    from .config import read_config
    from .training import data_scales, train

    model_cfg, train_cfg = build_configs(args.preset, args.sketch, args.resolution, args.set)
    if args.steps:
        train_cfg = dataclasses.replace(train_cfg, steps=args.steps)
    if args.batch_size:
        train_cfg = dataclasses.replace(train_cfg, batch_size=args.batch_size)
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
    from .research.baselines import config_fields, default_config, train_baseline

    fields = config_fields(args.kind)
    overrides: dict[str, Any] = {"sketch_kind": args.sketch, "resolution": args.resolution}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise CheartflowError(f"--set expects FIELD=VALUE with FIELD one of {sorted(fields)}; got {item!r}")
        overrides[key] = _parse_value(raw)
    for key in ("steps", "batch_size"):
        if getattr(args, key):
            overrides[key] = getattr(args, key)
    cfg = default_config(args.kind, **overrides)
    images, sketches = load_training_set(args.data, args.sketch, args.resolution)
    log.info("training %s on %d slices into %s", args.kind, len(images), args.out)
    train_baseline(args.kind, images, sketches, args.out, cfg, device=args.device, time_limit_s=args.time_limit,
                   resume=not args.no_resume, progress=not args.quiet)
    return 0


def cmd_train_seg(args: argparse.Namespace) -> int:
    from .research.segmentation import SegmenterConfig, SegTrainConfig, train_segmenter

    train_kw: dict[str, Any] = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or key not in {f.name for f in dataclasses.fields(SegTrainConfig)}:
            raise CheartflowError(f"--set expects FIELD=VALUE with FIELD a SegTrainConfig field; got {item!r}")
        train_kw[key] = _parse_value(raw)
    for key in ("steps", "batch_size"):
        if getattr(args, key):
            train_kw[key] = getattr(args, key)
    train = load_split(args.data, "train", args.resolution)
    val = load_split(args.val or args.data, "val", args.resolution) if not args.data.endswith(".npz") or args.val else None
    _, results = train_segmenter(train.images, train.labels, SegmenterConfig(resolution=args.resolution),
                                 SegTrainConfig(**train_kw), args.out, device=args.device,
                                 val=(val.images, val.labels) if val is not None else None,
                                 time_limit_s=args.time_limit, progress=not args.quiet)
    dice = [r.val_dice for r in results if r.val_dice is not None]
    log.info("segmenter written to %s%s", args.out, f"; validation Dice {dice[-1]:.3f}" if dice else "")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .atomic import atomic_write_text
    from .errors import ModelNotAvailableError
    from .research.evaluation import Evaluator, pipeline_cache_key, pipeline_method, rows_to_json, sweep_t1
    from .pipeline import load_pipeline
    from .research.segmentation import load_segmenter

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
    schedule = _parse_schedule(args.schedule)
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


def cmd_pack(args: argparse.Namespace) -> int:
    from .data import PreprocessConfig, load_acdc, save_slices

    slices = load_acdc(args.data, args.split, config=PreprocessConfig(size=args.resolution), progress=not args.quiet)
    if args.per_patient:
        from .research.evaluation import per_patient_indices

        slices = slices.subset(per_patient_indices(slices.patients, args.per_patient))
    path = save_slices(args.out, slices)
    log.info("packed %d %s slices (%dpx) into %s", len(slices), args.split, args.resolution, path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_engine

    opts: dict[str, Any] = {"gate": not args.no_gate}
    if args.format in ("tensorrt", "torch-compiled"):
        opts["max_batch"] = args.max_batch
    if args.format == "torch-compiled" and args.device != "auto":
        opts["device"] = args.device
    if args.format == "tensorrt" and args.timing_cache:
        opts["timing_cache"] = args.timing_cache
    if args.format in ("onnx-int8", "openvino-int8"):
        if args.calibration is None:
            log.warning("no --calibration data: calibrating %s on phantom sketches; pass real sketches "
                        "(e.g. --calibration packed/train-128.npz) for an engine meant for real use", args.format)
        opts.update(calibration=args.calibration, calibration_count=args.calibration_count)
    path, report = export_engine(args.model, args.format, args.out, **opts)
    if report is not None:
        log.info("parity gate passed: max abs error %.2e, PSNR %.1f dB over %d inputs", report.max_abs_error,
                 report.psnr_db, report.n_inputs)
    log.info("wrote %s", path)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .export import verify_engine

    report = verify_engine(args.engine, args.reference, device=args.device)
    (log.info if report.passed else log.error)("%s", report.summary())
    return 0 if report.passed else 1


def _parse_schedule(raw: str | None):
    if raw is None:
        return None
    try:
        return tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise InvalidInputError(f"--schedule: expected comma-separated re-noise times in (0, 1), e.g. 0.5 or "
                                f"0.7,0.4; got {raw!r}") from None


SYNTH_FORMATS = ("auto", "png", "nifti", "dicom")
GRID_ROWS = 16  # --grid shows the first rows only (one per sketch)


def _synth_plan(items, formats: list[str], out: Path, input_path: Path):
    """(item, kinds of output) per input file and every output path, for the checks before any work."""
    plan, paths = [], []
    dicom_series = f"{input_path.name.split('.')[0] or 'sketches'}_synth_dicom"
    for item in items:
        kinds = set()
        for f in formats:
            kinds.add(("nifti" if item.nifti is not None else "png") if f == "auto" else f)
        if "nifti" in kinds and item.nifti is None:
            raise InvalidInputError(f"--format nifti: {item.path} is not a NIfTI file; NIfTI output keeps a NIfTI "
                                    "input's geometry (use --format png or dicom for other inputs)")
        stem = item.path.name[: -len(".nii.gz")] if item.path.name.lower().endswith(".nii.gz") else item.path.stem
        series = out / (f"{stem}_synth_dicom" if item.nifti is not None else dicom_series)
        entry = {"item": item, "kinds": kinds, "nifti": out / f"{stem}_synth.nii.gz", "series": series}
        if "png" in kinds:
            paths += [out / f"{n}_synth.png" for n in item.names]
        if "nifti" in kinds:
            paths.append(entry["nifti"])
        if "dicom" in kinds:
            paths += [series / f"{n}.dcm" for n in item.names]
        plan.append(entry)
    return plan, paths



def write_planned_outputs(plan: list, images: Any, out: Path, desc: str, settings: str) -> int:
    """Write each input's images in the formats `_synth_plan` chose (PNG, NIfTI, DICOM); returns the file count.

    `images` holds the inputs' images in plan order. DICOM of the inputs that are not volumes goes into one series."""

    from . import io
    from .medical_io import write_dicom_series, write_nifti

    a = written = 0
    loose: list = []
    for entry in plan:
        item = entry["item"]
        part = images[a:a + len(item.names)]
        a += len(item.names)
        if "png" in entry["kinds"]:
            io.write_pngs(out, part, [f"{n}_synth" for n in item.names])
            written += len(part)
        if "nifti" in entry["kinds"]:
            write_nifti(entry["nifti"], part, item.nifti, desc)
            written += 1
        if "dicom" in entry["kinds"] and item.nifti is not None:  # one series per input volume
            write_dicom_series(entry["series"], part, item.names, desc, settings, reference=item.nifti)
            written += len(part)
        elif "dicom" in entry["kinds"]:
            loose.append((entry["series"], part, item.names))
    if loose:
        write_dicom_series(loose[0][0], np.concatenate([p for _, p, _ in loose]), [n for _, _, ns in loose for n in ns],
                           desc, settings)
        written += sum(len(p) for _, p, _ in loose)
    return written

def _synthesize_with_progress(pipe, x, args, schedule, quiet: bool):
    """pipe.synthesize in chunks of --batch-size with a progress bar over many inputs (the same images: one
    sketch, one image)."""
    from tqdm import tqdm

    n, bs = len(x), args.batch_size
    kwargs = dict(steps=args.steps, schedule=schedule, seed=args.seed, sketch_kind=args.sketch_kind,
                  allow_unvalidated_steps=args.allow_unvalidated_steps)
    if n <= bs or quiet:
        return pipe.synthesize(x, batch_size=bs, **kwargs)
    outs = []
    with tqdm(total=n, unit="img", desc="synth") as bar:
        for a in range(0, n, bs):
            outs.append(pipe.synthesize(x[a:a + bs], batch_size=bs, **kwargs))
            bar.update(len(outs[-1]))
    return np.concatenate(outs)


def cmd_synth_ray(args: argparse.Namespace) -> int:
    """`synth --ray`: the same outputs through Ray Data, one pipeline per actor (cheartflow_sdk.ray_synth)."""
    from .ray_synth import synthesize_with_ray

    for flag, on in (("--grid", args.grid), ("--resize", args.resize)):
        if on:
            raise InvalidInputError(f"{flag} is not available with --ray (run without --ray for it)")
    paths = synthesize_with_ray(args.input, args.out, args.model, backend=args.backend,
                                device="cpu" if args.device == "auto" else args.device, steps=args.steps,
                                schedule=_parse_schedule(args.schedule), seed=args.seed, sketch_kind=args.sketch_kind,
                                formats=args.format or ["auto"], drawing=args.drawing, batch_size=args.batch_size,
                                num_actors=args.actors, overwrite=args.overwrite,
                                allow_unvalidated_steps=args.allow_unvalidated_steps, address=args.ray_address)
    log.info("wrote %d output file(s) to %s with Ray", len(paths), args.out)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    if getattr(args, "ray", False):
        return cmd_synth_ray(args)
    from . import io
    from .medical_io import synthetic_description
    from .pipeline import load_pipeline
    from .resize import fit_sketches, restore_images

    schedule = _parse_schedule(args.schedule)
    inp, out = Path(args.input), Path(args.out)
    if not inp.exists():
        raise InvalidInputError(f"{inp}: no such file or folder (expected a sketch file or a folder of them)")
    io.check_output_dir(out, inp)  # before any work: exit code 2 on a bad --out
    formats = args.format or ["auto"]
    if "dicom" in formats:
        from ._optional import require

        require("pydicom")
    pipe = load_pipeline(args.model, backend=args.backend, device=args.device, sketch_kind=args.sketch_kind)
    kind, res = pipe.config.sketch_kind, pipe.config.resolution
    items = io.read_sketch_files(inp, kind=kind, drawing=args.drawing, size=res if args.drawing else None)
    plan, paths = _synth_plan(items, formats, out, inp)
    io.check_output_files(paths + ([out / "grid.png"] if args.grid else []), overwrite=args.overwrite)
    sketches = np.concatenate([i.sketches for i in items])
    fit = None
    if args.resize:
        sketches, fit = fit_sketches(sketches, res, kind)
    log.info("backend %s; %d sketches; %d step(s)", pipe.backend, len(sketches), args.steps)
    start = time.perf_counter()
    images = _synthesize_with_progress(pipe, sketches, args, schedule, args.quiet)
    log.info("synthesized %d images in %.2f s", len(images), time.perf_counter() - start)
    model_name = Path(str(pipe.source)).name
    desc = synthetic_description(model_name, args.steps, args.seed)
    settings = (f"model={model_name} backend={pipe.backend} sketch_kind={kind} steps={args.steps} "
                f"schedule={schedule} seed={args.seed}")
    full = restore_images(images, fit) if fit is not None else images
    written = write_planned_outputs(plan, full, out, desc, settings)
    if args.grid:
        rows = min(len(images), args.grid_rows)
        if rows < len(images):
            log.info("grid.png shows the first %d of %d sketches (--grid-rows)", rows, len(images))
        io.write_grid(out / "grid.png", [sketches[:rows], images[:rows]], titles=["sketch", f"{args.steps}-step"])
    log.info("wrote %d output file(s) to %s%s", written, out, " and grid.png" if args.grid else "")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import io
    from .errors import ModelNotAvailableError
    from .examples import load_example_sketches
    from .pipeline import load_pipeline

    out = Path(args.out)
    columns, titles = [], []
    for kind in ("edges", "labels"):
        try:
            pipe = load_pipeline(None, sketch_kind=kind)
        except ModelNotAvailableError:
            log.warning("no bundled %s model in this installation; skipping that half of the demo", kind)
            continue
        sketches, _ = load_example_sketches(kind)
        start = time.perf_counter()
        images = [pipe.synthesize(sketches, steps=s, seed=args.seed) for s in (1, 2)]
        log.info("%s model (backend %s): %d example sketches, 1- and 2-step, in %.2f s",
                 kind, pipe.backend, len(sketches), time.perf_counter() - start)
        columns += [sketches, *images]
        titles += [f"{kind} sketch", "1-step", "2-step"]
    if not columns:
        log.warning(
            "No bundled default model is installed, so there is no ACDC-trained demo to run. "
            "To get real cardiac MR images, train one: `cheartflow train --data ../shared/data/acdc --out runs/edges` "
            "(see the README). Running the self-contained phantom demo instead: a tiny model trained for %d steps on "
            "procedural phantoms, exported to ONNX and sampled with 1 and 2 steps.", args.train_steps)
        return _phantom_demo(out, args.train_steps)
    io.write_grid(out / "grid.png", columns, titles=titles)
    log.info("wrote %s: the package's example sketches (procedural phantoms, not patient data) and the bundled "
             "models' images", out / "grid.png")
    return 0


def _phantom_demo(out: Path, train_steps: int) -> int:
    from . import io
    from .config import ModelConfig, TrainConfig
    from .data.phantom import make_phantom
    from .export import export_onnx
    from .pipeline import load_pipeline
    from .sketch import canny
    from .training import train

    res = 64
    images, _ = make_phantom(512, size=res, seed=0)
    # Small enough to train in about a minute on 2 CPU cores.
    model_cfg = ModelConfig(resolution=res, **PRESETS["small"], channel_mult=(1, 2, 2), attention_levels=())
    train_cfg = TrainConfig(steps=train_steps, batch_size=16, lr=1e-3, warmup_steps=20, ema_decay=0.99,
                            curriculum_end=80, log_every=25, checkpoint_every=10**9)
    train(images, canny(images), model_cfg, train_cfg, out / "model", device="auto", resume=False)
    onnx_path, report = export_onnx(out / "model")
    pipe = load_pipeline(onnx_path)
    test_images, _ = make_phantom(6, size=res, seed=99)
    sketches = canny(test_images)
    columns = [sketches, (test_images + 1) / 2] + [pipe.synthesize(sketches, steps=s, seed=0) for s in (1, 2)]
    io.write_grid(out / "grid.png", columns, titles=["sketch", "phantom", "1-step", "2-step"])
    log.info("phantom demo done: %s (backend %s, ONNX parity max abs err %.1e); the model is in %s",
             out / "grid.png", pipe.backend, report.max_abs_error, out / "model")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the `cheartflow` command."""
    p = argparse.ArgumentParser(prog="cheartflow", description="Sketch-to-cardiac-MR synthesis (cHeartFlow).")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", required=True)
    # every command's --help shows each option's default
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    t = sub.add_parser("train", help="train an encoder on ACDC (or a packed .npz of slices)")
    t.add_argument("--data", required=True, help="ACDC root folder (with splits.json) or a .npz from cf.data.save_slices")
    t.add_argument("--out", required=True, help="run folder: model.safetensors, config.json, metrics.jsonl, train_state/")
    t.add_argument("--sketch", choices=("edges", "labels"), default="edges")
    t.add_argument("--resolution", type=int, default=128)
    t.add_argument("--preset", choices=sorted(PRESETS), default="default")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override any ModelConfig/TrainConfig field")
    t.add_argument("--steps", type=int, help="total optimizer steps (TrainConfig.steps)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--device", default="auto")
    t.add_argument("--time-limit", type=float, help="stop (and checkpoint) after this many seconds; rerun to resume")
    t.add_argument("--no-resume", action="store_true", help="start over even if --out holds a training state")
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
    b.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a baseline config field")
    b.add_argument("--steps", type=int)
    b.add_argument("--batch-size", type=int)
    b.add_argument("--device", default="auto")
    b.add_argument("--time-limit", type=float, help="stop (and checkpoint) after this many seconds")
    b.add_argument("--no-resume", action="store_true")
    b.set_defaults(func=cmd_train_baseline)

    g = sub.add_parser("train-seg", help="train the evaluation segmenter (seg-Dice, Frechet-seg) on ACDC train/val")
    g.add_argument("--data", required=True, help="ACDC root folder (train + val splits) or a packed train .npz")
    g.add_argument("--val", help="packed val .npz when --data is a .npz")
    g.add_argument("--out", required=True)
    g.add_argument("--resolution", type=int, default=128)
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a SegTrainConfig field")
    g.add_argument("--steps", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--device", default="auto")
    g.add_argument("--time-limit", type=float)
    g.set_defaults(func=cmd_train_seg)

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

    k = sub.add_parser("pack", help="preprocess one ACDC split into a single .npz (for `train --data` on another machine)")
    k.add_argument("--data", required=True, help="ACDC root folder (with splits.json)")
    k.add_argument("--split", choices=("train", "val", "test"), default="train")
    k.add_argument("--resolution", type=int, default=128)
    k.add_argument("--out", required=True, help="output .npz path")
    k.add_argument("--per-patient", type=int, metavar="K",
                   help="keep K slices per patient, evenly spread (e.g. a small val file for checkpoint selection)")
    k.set_defaults(func=cmd_pack)

    e = sub.add_parser("export", help="export a trained model to an engine (behind the parity gate)")
    e.add_argument("model", help="run folder written by `cheartflow train`")
    e.add_argument("--format", default="onnx", choices=("onnx", "onnx-fp16", "tensorrt", "torch-compiled", "onnx-int8",
                                                         "openvino", "openvino-int8"))
    e.add_argument("--out", help="engine path (default: MODEL/<standard name>: model.onnx, model.fp16.onnx, model.engine, "
                                 "model.pt2, model.int8.onnx, model.openvino.xml, model.int8.xml)")
    e.add_argument("--no-gate", action="store_true", help="skip the parity check against the PyTorch encoder")
    e.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="torch-compiled: cuda (fp16) or cpu (fp32)")
    e.add_argument("--max-batch", type=int, default=256, help="tensorrt / torch-compiled: largest batch")
    e.add_argument("--timing-cache", help="tensorrt: timing cache path (default: beside the engine)")
    e.add_argument("--calibration", help="onnx-int8 / openvino-int8: real sketches to calibrate on, a packed .npz "
                                         "(e.g. packed/train-128.npz) or sketch files (default: phantom sketches)")
    e.add_argument("--calibration-count", type=int, default=64, help="onnx-int8 / openvino-int8: calibration sketches")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("verify", help="rerun the parity gate of an engine against its source checkpoint")
    v.add_argument("engine", help="engine file to verify (.onnx, .engine/.plan or .pt2)")
    v.add_argument("--reference", help="source run folder (default: found from the engine's metadata)")
    v.add_argument("--device", default="auto")
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("synth", help="synthesize images from sketch files (PNG/JPEG/NumPy/NIfTI, a file or a folder)")
    s.add_argument("input", help="a sketch file (.png .jpg .bmp .tif .npy .nii .nii.gz) or a folder of them")
    s.add_argument("--model", help="model folder or .onnx engine (default: the bundled model)")
    s.add_argument("--out", required=True, help="output folder (created; must not be the input folder)")
    s.add_argument("--format", action="append", choices=SYNTH_FORMATS,
                   help="output format, repeatable: auto = NIfTI for NIfTI inputs (same geometry), PNG otherwise; "
                        "dicom needs the [dicom] extra (default: auto)")
    s.add_argument("--steps", type=int, default=1, help="encoder evaluations: 1 = one-step, 2 = two-step, ...")
    s.add_argument("--allow-unvalidated-steps", action="store_true",
                   help="allow --steps above the largest count the model was validated for (its config's max_steps)")
    s.add_argument("--schedule", help="comma-separated re-noise times t_k in (0,1), steps-1 of them (default: the model's)")
    s.add_argument("--seed", type=int, default=0, help="noise seed; each sketch's noise comes from it and the sketch itself")
    s.add_argument("--backend", default="auto", choices=BACKENDS)
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="cuda without a usable GPU is an error")
    s.add_argument("--batch-size", type=int, default=8, help="sketches per encoder call (8 keeps the peak memory of a CPU run under 500 MB)")
    s.add_argument("--sketch-kind", choices=("edges", "labels"),
                   help="declare the input's kind (checked against the model; undeclared, a kind mismatch is detected)")
    s.add_argument("--drawing", action="store_true",
                   help="image inputs are hand drawings (dark, coloured or thick lines on light paper): normalize them "
                        "to model sketches, keeping the aspect ratio by padding")
    s.add_argument("--resize", action="store_true",
                   help="fit slices of another size to the model (zero padding to a square, then nearest for labels, "
                        "area/linear + thinning for edges) and resize the images back (area/cubic)")
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.add_argument("--grid", action="store_true", help="also write grid.png (sketch | image)")
    s.add_argument("--grid-rows", type=int, default=GRID_ROWS, help="rows of grid.png: the first N sketches")
    s.add_argument("--ray", action="store_true", help="run on Ray Data, one pipeline per actor (the [ray] extra); "
                                                      "same files as without it")
    s.add_argument("--ray-address", help="--ray: cluster to join (ray.init address, e.g. auto or ray://head:10001; "
                                         "None: a local Ray instance)")
    s.add_argument("--actors", type=int, help="--ray: pipelines in parallel (None: the cluster's CPUs)")
    s.set_defaults(func=cmd_synth)

    d = sub.add_parser("demo", help="synthesize a sample grid with the bundled model (or a phantom demo without one)")
    d.add_argument("--out", default="cheartflow-demo")
    d.add_argument("--seed", type=int, default=0, help="noise seed of the samplers")
    d.add_argument("--train-steps", type=int, default=200, help="phantom demo only (no bundled model): training steps")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cheartflow` command; returns the exit status."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CheartflowError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
