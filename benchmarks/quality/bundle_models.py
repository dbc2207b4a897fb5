"""Put trained runs into the package as its bundled default models (maintainers' step before a release).

For each ``--model KIND=RUN_DIR`` (a folder from ``cheartflow train``): copies the checkpoint chosen on
val (``RUN_DIR/best/``, written when training had ``--val``; else the final one) ``model.safetensors``
and ``config.json`` into ``cheartflow_sdk/default_models/KIND/`` and exports both ONNX engines there
through their parity gates against the shipped weights: ``model.onnx`` (fp32, what CPUs run) and
``model.fp16.onnx`` (fp16 compute, fp32 inputs/outputs, preferred on CUDA).
``--segmenter RUN_DIR`` (from ``cheartflow train-seg``) goes to ``default_models/segmenter/``. Each
run's ``metrics.jsonl`` is copied to ``benchmarks/quality/training/<name>-metrics.jsonl`` (the
training log that is committed beside the report). Every write is atomic.

    python benchmarks/quality/bundle_models.py --model edges=runs/edges --model labels=runs/labels \\
        --segmenter runs/segmenter
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this writes into the checkout, so it runs the checkout's code

from cheartflow_sdk.atomic import atomic_write_bytes  # noqa: E402
from cheartflow_sdk.config import CONFIG_FILENAME, read_config  # noqa: E402
from cheartflow_sdk.errors import InvalidInputError  # noqa: E402

log = logging.getLogger("bundle_models")
PACKAGE_MODELS = ROOT / "cheartflow_sdk" / "default_models"
TRAINING_LOGS = ROOT / "benchmarks" / "quality" / "training"
MODEL_FILES = ("model.safetensors", "config.json")
SEGMENTER_FILES = ("segmenter.safetensors", "config.json")


def copy_files(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    """Copy `names` from src to dst atomically, failing before any write when one is missing."""
    missing = [n for n in names if not (src / n).is_file()]
    if missing:
        raise InvalidInputError(f"{src} lacks {missing}; expected a finished run folder with {list(names)}")
    for name in names:
        atomic_write_bytes(dst / name, (src / name).read_bytes())


def copy_training_log(run: Path, name: str) -> None:
    log_file = run / "metrics.jsonl"
    if log_file.is_file():
        atomic_write_bytes(TRAINING_LOGS / f"{name}-metrics.jsonl", log_file.read_bytes())
    else:
        log.warning("%s has no metrics.jsonl; no training log copied for %s", run, name)


def chosen_checkpoint(run: Path) -> Path:
    """The run's checkpoint chosen on val (``run/best``) when it has one, else its final one."""
    from cheartflow_sdk.training.selection import BEST_DIRNAME, SELECTION_KEY

    best = run / BEST_DIRNAME
    if not (best / CONFIG_FILENAME).is_file():
        log.warning("%s has no checkpoint chosen on val (best/); bundling its final weights", run)
        return run
    record = read_config(best)[2][SELECTION_KEY]
    log.info("%s: bundling the checkpoint chosen on val, step %d (%s %.4f)", run, record["step"], record["metric"],
             record["value"])
    return best


def bundle_model(kind: str, run: Path) -> None:
    """Copy one cHeartFlow run's chosen checkpoint into the package and export its gated ONNX engines there."""
    from cheartflow_sdk.export import export_onnx, export_onnx_fp16

    checkpoint = chosen_checkpoint(run)
    sketch_kind = read_config(checkpoint)[0].sketch_kind
    if sketch_kind != kind:
        raise InvalidInputError(f"{run} was trained on {sketch_kind!r} sketches, not {kind!r}")
    dst = PACKAGE_MODELS / kind
    copy_files(checkpoint, dst, MODEL_FILES)
    for export in (export_onnx, export_onnx_fp16):
        onnx_path, report = export(dst)
        log.info("%s: %s (parity max abs err %.1e, PSNR %.1f dB)", kind, onnx_path, report.max_abs_error, report.psnr_db)
    copy_training_log(run, kind)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], metavar="KIND=RUN_DIR")
    p.add_argument("--segmenter", metavar="RUN_DIR")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for spec in args.model:
        kind, sep, run = spec.partition("=")
        if not sep:
            p.error(f"--model expects KIND=RUN_DIR, got {spec!r}")
        bundle_model(kind, Path(run))
    if args.segmenter:
        copy_files(Path(args.segmenter), PACKAGE_MODELS / "segmenter", SEGMENTER_FILES)
        copy_training_log(Path(args.segmenter), "segmenter")
        log.info("segmenter: %s", PACKAGE_MODELS / "segmenter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
