#!/usr/bin/env python
"""Are the demo's edge sketches in the edges model's training distribution? Edge density and fragments.

    python benchmarks/demo_sketches.py [--train packed/train-128.npz] [--results-dir DIR]

Compares, per sketch, the fraction of edge pixels and the number of 8-connected edge fragments of:
the ACDC training edge sketches (``canny`` with the training defaults of the images in a
``cheartflow pack`` file, read only), the shipped edge examples (``cheartflow demo``'s input), 64
more chest-phantom slices (the generator beyond the 8 shipped ones) and the plain-phantom edges the
demo used before (three clean curves of the heart). Writes ``demo-sketches.json`` (benchmarks/results.py
format) into the results folder and prints a table of medians and interquartile ranges.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchmarks/results.py: the results-file writer every benchmark shares

import results  # noqa: E402

from cheartflow_sdk.data import load_slices  # noqa: E402
from cheartflow_sdk.data.phantom import make_chest_phantom, make_phantom  # noqa: E402
from cheartflow_sdk.examples import (  # noqa: E402
    EXAMPLE_COUNT,
    EXAMPLE_SEED,
    edge_components,
    edge_density,
    heart_crops,
    load_example_sketches,
)
from cheartflow_sdk.sketch import canny  # noqa: E402


def sketch_sets(train: Path) -> dict[str, np.ndarray]:
    """Edge sketch sets [B,1,128,128] by name."""
    shipped, _ = load_example_sketches("edges")
    return {
        "acdc_train": canny(load_slices(train).images),
        "demo": shipped,
        "chest_phantom_64": canny(heart_crops(*make_chest_phantom(64, size=256, seed=0))[0]),
        "old_demo": canny(heart_crops(*make_phantom(EXAMPLE_COUNT, size=256, seed=EXAMPLE_SEED))[0]),
    }


def summary(values: np.ndarray) -> dict[str, float]:
    """Median, quartiles and 5th/95th percentiles."""
    p5, q25, med, q75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    return {"p5": p5, "q25": q25, "median": med, "q75": q75, "p95": p95}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", default="packed/train-128.npz", help="`cheartflow pack` file of the training split")
    p.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR)
    args = p.parse_args(argv)
    metrics: dict[str, float | int] = {}
    print(f"{'set':<18} {'n':>5}  {'edge density median [IQR]':<28} {'fragments median [IQR]'}")
    for name, sketches in sketch_sets(Path(args.train)).items():
        metrics[f"{name}_n"] = len(sketches)
        for stat, values in (("density", edge_density(sketches)), ("fragments", edge_components(sketches))):
            for key, value in summary(values).items():
                metrics[f"{name}_{stat}_{key}"] = round(float(value), 4)
        d, c = (summary(edge_density(sketches)), summary(edge_components(sketches)))
        print(f"{name:<18} {len(sketches):>5}  {d['median']:.3f} [{d['q25']:.3f}, {d['q75']:.3f}]{'':<8} "
              f"{c['median']:.0f} [{c['q25']:.0f}, {c['q75']:.0f}]")
    path = results.write_results("demo-sketches", metrics, results_dir=args.results_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
