"""Training curves: validation one-step SSIM (and PSNR) against training wall-clock minutes, one line per run.

    python benchmarks/quality/training_curve.py --out benchmarks/quality/training_curve.png \\
        --run "edges, new recipe=runs/edges-v2/metrics.jsonl" \\
        --run "edges, old recipe=benchmarks/quality/training/edges-old-recipe-continued-metrics.jsonl"

Minutes come from a log's ``train_minutes`` field where it has one (written since the gap-schedule recipe:
every resumed chunk's steps, checkpoints and validations); older logs only have wall-clock stamps, so
their minutes are the sum of the intervals between log lines, leaving out pauses longer than ten times
the median interval (the time between a stopped chunk and its resumption).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAUSE_FACTOR = 10.0  # an interval this many times the median one is a pause between chunks, not training


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a metrics.jsonl."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def minutes_by_line(records: Sequence[dict[str, Any]]) -> list[float]:
    """Training minutes at each log line (see the module doc)."""
    if records and all("train_minutes" in r for r in records if "loss" in r):
        minutes, last = [], 0.0
        for r in records:  # validation lines carry no train_minutes: they take the last loss line's value
            last = r.get("train_minutes", last)
            minutes.append(float(last))
        return minutes
    stamps = [float(r["time"]) for r in records]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    pause = PAUSE_FACTOR * statistics.median(gaps) if gaps else 0.0
    minutes, total = [0.0], 0.0
    for gap in gaps:
        total += gap if gap < pause else 0.0
        minutes.append(total / 60)
    return minutes


def val_curve(records: Sequence[dict[str, Any]]) -> list[tuple[float, float, float, int]]:
    """(minutes, val SSIM, val PSNR, step) of every validation line."""
    return [(m, float(r["val_ssim"]), float(r["val_psnr"]), int(r["step"]))
            for m, r in zip(minutes_by_line(records), records) if "val_ssim" in r]


def write_curves(path: str | Path, runs: dict[str, list[tuple[float, float, float, int]]], title: str = "") -> Path:
    """A two-panel PNG (val SSIM and val PSNR against training minutes), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from cheartflow_sdk.atomic import atomic_output

    rows = -(-len(runs) // 2)  # legend rows below the plots, two runs per row
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2 + 0.25 * rows))
    colors = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20").colors  # one color per run
    for i, (label, points) in enumerate(runs.items()):
        if not points:
            continue
        minutes, ssim, psnr, _ = zip(*points)
        axes[0].plot(minutes, ssim, marker="o", ms=3, label=label, color=colors[i % len(colors)])
        axes[1].plot(minutes, psnr, marker="o", ms=3, label=label, color=colors[i % len(colors)])
    for ax, name in zip(axes, ("val SSIM (one-step)", "val PSNR dB (one-step)")):
        ax.set_xlabel("training wall-clock (minutes)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.055 * rows / (1 + 0.06 * rows), 1, 1))
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Validation SSIM/PSNR against training minutes (see the module doc).")
    p.add_argument("--run", action="append", required=True, metavar="LABEL=METRICS_JSONL",
                   help="a run's metrics.jsonl and its legend label")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.run:
        label, sep, path = spec.rpartition("=")
        if not sep or not label or not Path(path).is_file():
            raise SystemExit(f"--run expects LABEL=PATH to an existing metrics.jsonl, got {spec!r}")
        runs[label] = val_curve(read_log(path))
    write_curves(args.out, runs, args.title)
    for label, points in runs.items():
        if points:
            best = max(points, key=lambda q: q[1])
            print(f"{label}: best val SSIM {best[1]:.4f} (PSNR {best[2]:.2f} dB) at step {best[3]}, {best[0]:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
