"""`cheartflow demo`: a sample grid from the bundled models, or a self-contained phantom demo without them."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from .train import PRESETS

log = logging.getLogger("cheartflow")


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import io
    from ..errors import ModelNotAvailableError
    from ..examples import load_example_sketches
    from ..pipeline import load_pipeline

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
    from .. import io
    from ..config import ModelConfig, TrainConfig
    from ..data.phantom import make_phantom
    from ..export import export_onnx
    from ..pipeline import load_pipeline
    from ..sketch import canny
    from ..training import train

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


def add_parsers(sub) -> None:
    d = sub.add_parser("demo", help="synthesize a sample grid with the bundled model (or a phantom demo without one)")
    d.add_argument("--out", default="cheartflow-demo")
    d.add_argument("--seed", type=int, default=0, help="noise seed of the samplers")
    d.add_argument("--train-steps", type=int, default=200, help="phantom demo only (no bundled model): training steps")
    d.set_defaults(func=cmd_demo)
