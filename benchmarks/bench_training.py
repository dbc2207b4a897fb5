"""Training speed on this machine: seconds per optimizer step by preset, autocast, memory format and threads.

    python benchmarks/bench_training.py [--presets small,default] [--steps 5] [--out-name training-cpu]

Each configuration trains a fresh encoder on phantom slices at 128x128 for a few warm-up steps, then
times ``--steps`` steps of the consistency stage (teacher pass on, the costlier case) and of the
regression stage (stage 0, no teacher pass). Writes ``benchmarks/results/<out-name>.json`` and a markdown
table beside it. Run it on an otherwise idle machine: it times the CPU.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/results.py, benchlib

import results  # noqa: E402
from benchlib.timing import wall_times  # noqa: E402


def time_steps(preset: str, amp: str, channels_last: bool, threads: int, stage: int, steps: int,
               data: tuple) -> float:
    """Mean seconds per step of `steps` steps at gap stage `stage`, after two warm-up steps."""
    from cheartflow_sdk.cli import PRESETS
    from cheartflow_sdk.config import ModelConfig, TrainConfig
    from cheartflow_sdk.training import Trainer

    cfg = TrainConfig(steps=10**6, batch_size=16, amp=amp, channels_last=channels_last, threads=threads,
                      gap_stage_steps=1000, log_every=10**6, checkpoint_every=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(*data, ModelConfig(**PRESETS[preset]), cfg, tmp, device="cpu", resume=False)
        trainer.step_count = 1000 * stage
        return float(np.mean(wall_times(trainer.step, steps, warmup=2)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="small,default")
    p.add_argument("--amp", default="off,bf16", help="comma-separated autocast settings")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    p.add_argument("--out-name", default="training-cpu")
    args = p.parse_args(argv)
    from cheartflow_sdk.cpu_features import has_native_bf16
    from cheartflow_sdk.data.phantom import make_phantom
    from cheartflow_sdk.sketch import canny

    images, _ = make_phantom(64, size=128, seed=0)
    data = (images, canny(images))
    metrics, lines = {"native_bf16": has_native_bf16()}, []
    grid = itertools.product(args.presets.split(","), args.amp.split(","), (False, True), map(int, args.threads.split(",")))
    for preset, amp, channels_last, threads in grid:
        layout = "channels_last" if channels_last else "nchw"
        cells = []
        for stage, name in ((1, "consistency"), (0, "regression")):
            sec = time_steps(preset, amp, channels_last, threads, stage, args.steps, data)
            metrics[f"{preset}_{amp}_{layout}_t{threads}_{name}_s_per_step"] = round(sec, 4)
            cells.append(f"{sec:.3f}")
        lines.append(f"| {preset} | {amp} | {layout} | {threads} | {cells[0]} | {cells[1]} |")
        print(lines[-1], flush=True)
    path = results.write_results(args.out_name, metrics)
    table = ["| preset | autocast | layout | threads | s/step (consistency stage) | s/step (regression stage) |",
             "|---|---|---|---:|---:|---:|", *lines]
    path.with_suffix(".md").write_text(
        f"# Training speed ({results.device_name()})\n\nbatch 16, 128x128; command: `python benchmarks/bench_training.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n" + "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
