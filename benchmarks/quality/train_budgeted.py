"""Train a cHeartFlow model within a wall-clock budget (one GPU-session call), choosing it on val.

The curriculum, warm-up and EMA of a run are defined over its total step count, so a run cut by a
time limit would stop mid-curriculum. This script first measures the step rate on the device (a
short probe in a scratch folder), sizes the run to fit the budget, trains with ``--val`` so the
best checkpoint on val lands in ``OUT/best/``, and copies what a release needs into
``--results-dir``: the chosen weights and config, the training log, and a results JSON (device,
date, versions, command, step rate, steps, the chosen step and its val scores).

    python benchmarks/quality/train_budgeted.py --sketch edges --data packed/train-128.npz \\
        --val packed/val-128.npz --out runs/gpu-edges --budget-s 480 --results-dir "$OUT"

Back on the development machine, put the returned files into a run folder
(``train-edges-best.safetensors`` -> ``RUN/best/model.safetensors``, ``train-edges-best-config.json``
-> ``RUN/best/config.json``, ``train-edges-metrics.jsonl`` -> ``RUN/metrics.jsonl``) and bundle it
with ``bundle_models.py --model edges=RUN``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parents[1]))  # an installed cheartflow_sdk wins; else this checkout
sys.path.insert(0, str(HERE.parent))  # benchmarks/results.py

import results  # noqa: E402

log = logging.getLogger("train_budgeted")


def measure_step_seconds(trainer, probe_steps: int) -> float:
    """Seconds per optimizer step after a few warm-up steps (CUDA-synchronized)."""
    import torch

    def sync() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)

    for _ in range(3):
        trainer.step()
    sync()
    start = time.perf_counter()
    for _ in range(probe_steps):
        trainer.step()
    sync()
    return (time.perf_counter() - start) / probe_steps


def size_run(train_cfg, step_s: float, budget_s: float, validations: int = 10):
    """The TrainConfig of a run that fits `budget_s` at `step_s` (10% kept for checkpoints and validation)."""
    steps = max(10, int(0.9 * budget_s / step_s))
    return dataclasses.replace(
        train_cfg, steps=steps, warmup_steps=max(1, min(train_cfg.warmup_steps, steps // 10)),
        ema_decay=min(train_cfg.ema_decay, 1.0 - 10.0 / steps),  # EMA half-life within a tenth of the run
        checkpoint_every=max(1, steps // validations), log_every=max(1, min(train_cfg.log_every, steps // 100)))


def main(argv: list[str] | None = None) -> int:
    from cheartflow_sdk.cli import PRESETS, build_configs, load_training_set
    from cheartflow_sdk.config import CONFIG_FILENAME
    from cheartflow_sdk.training import Trainer
    from cheartflow_sdk.training.checkpoint import MODEL_FILENAME
    from cheartflow_sdk.training.loop import METRICS_FILENAME
    from cheartflow_sdk.training.selection import BEST_DIRNAME, SELECTION_KEY

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sketch", choices=("edges", "labels"), default="edges")
    p.add_argument("--data", required=True, help="packed train .npz (cheartflow pack) or ACDC folder")
    p.add_argument("--val", required=True, help="packed val .npz (cheartflow pack --split val) or ACDC folder")
    p.add_argument("--out", required=True, help="run folder (started afresh)")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the training itself")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="ModelConfig/TrainConfig overrides")
    p.add_argument("--probe-steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    model_cfg, train_cfg = build_configs(args.preset, args.sketch, args.resolution, args.set)
    images, sketches = load_training_set(args.data, args.sketch, args.resolution)
    val = load_training_set(args.val, args.sketch, args.resolution, split="val")
    with tempfile.TemporaryDirectory() as scratch:
        probe = Trainer(images, sketches, model_cfg, train_cfg, scratch, device=args.device, resume=False)
        step_s = measure_step_seconds(probe, args.probe_steps)
        device = probe.device
        del probe
    train_cfg = size_run(train_cfg, step_s, args.budget_s)
    log.info("%.1f ms/step on %s: %d steps of batch %d in %.0f s", 1e3 * step_s, device, train_cfg.steps,
             train_cfg.batch_size, args.budget_s)

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    trainer = Trainer(images, sketches, model_cfg, train_cfg, out, device=args.device, resume=False, val=val)
    start = time.perf_counter()
    trainer.run(time_limit_s=1.1 * args.budget_s, progress=False)
    wall_s = time.perf_counter() - start
    record = trainer.selection.record if trainer.selection is not None else None
    if record is None:
        log.error("no checkpoint was chosen on val (every score was NaN?)")
        return 1

    name = f"train-{args.sketch}"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / BEST_DIRNAME / MODEL_FILENAME, args.results_dir / f"{name}-best.safetensors")
    shutil.copyfile(out / BEST_DIRNAME / CONFIG_FILENAME, args.results_dir / f"{name}-best-config.json")
    shutil.copyfile(out / METRICS_FILENAME, args.results_dir / f"{name}-metrics.jsonl")
    params = sum(p.numel() for p in trainer.ema.parameters())
    metrics = {"sketch": args.sketch, "parameters": params, "batch_size": train_cfg.batch_size,
               "step_ms": 1e3 * step_s, "steps_planned": train_cfg.steps, "steps_trained": trainer.step_count,
               "train_wall_s": wall_s, "images_seen": trainer.step_count * train_cfg.batch_size,
               "chosen_step": record["step"], "chosen_val_ssim": record["val_ssim"],
               "chosen_val_psnr": record["val_psnr"], "val_slices": record["val_slices"]}
    path = results.write_results(name, metrics, {SELECTION_KEY: record}, results_dir=args.results_dir)
    log.info("chosen on val: step %d (SSIM %.4f, PSNR %.2f dB); results in %s", record["step"], record["val_ssim"],
             record["val_psnr"], path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
