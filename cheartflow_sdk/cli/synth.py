"""`cheartflow synth`: sketch files in, image files out (PNG, NIfTI, DICOM), locally or on Ray."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from ..backends.registry import BACKENDS
from ..errors import InvalidInputError
from .options import parse_schedule

log = logging.getLogger("cheartflow")

SYNTH_FORMATS = ("auto", "png", "nifti", "dicom")
GRID_ROWS = 16  # --grid shows the first rows only (one per sketch)


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
    from ..ray_synth import synthesize_with_ray

    for flag, on in (("--grid", args.grid), ("--resize", args.resize)):
        if on:
            raise InvalidInputError(f"{flag} is not available with --ray (run without --ray for it)")
    paths = synthesize_with_ray(args.input, args.out, args.model, backend=args.backend,
                                device="cpu" if args.device == "auto" else args.device, steps=args.steps,
                                schedule=parse_schedule(args.schedule), seed=args.seed, sketch_kind=args.sketch_kind,
                                formats=args.format or ["auto"], drawing=args.drawing, batch_size=args.batch_size,
                                num_actors=args.actors, cpus_per_actor=1 if args.threads is None else args.threads,
                                overwrite=args.overwrite,
                                allow_unvalidated_steps=args.allow_unvalidated_steps, address=args.ray_address)
    log.info("wrote %d output file(s) to %s with Ray", len(paths), args.out)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    if getattr(args, "ray", False):
        return cmd_synth_ray(args)
    from .. import io
    from ..medical_io import synthetic_description
    from ..pipeline import load_pipeline
    from ..resize import fit_sketches, restore_images
    from ..synthesis_outputs import plan_outputs, write_planned_outputs

    schedule = parse_schedule(args.schedule)
    inp, out = Path(args.input), Path(args.out)
    if not inp.exists():
        raise InvalidInputError(f"{inp}: no such file or folder (expected a sketch file or a folder of them)")
    io.check_output_dir(out, inp)  # before any work: exit code 2 on a bad --out
    formats = args.format or ["auto"]
    if "dicom" in formats:
        from .._optional import require

        require("pydicom")
    pipe = load_pipeline(args.model, backend=args.backend, device=args.device, sketch_kind=args.sketch_kind,
                         threads=args.threads)
    kind, res = pipe.config.sketch_kind, pipe.config.resolution
    items = io.read_sketch_files(inp, kind=kind, drawing=args.drawing, size=res if args.drawing else None)
    plan, paths = plan_outputs(items, formats, out, inp)
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


def add_parsers(sub) -> None:
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
    s.add_argument("--threads", type=int, help="CPU threads of the engine (None: every core); with --ray, the threads "
                                               "and Ray CPUs of each actor (None: 1)")
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
