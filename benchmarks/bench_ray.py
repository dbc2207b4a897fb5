"""Ray Data batch synthesis throughput with 1, 2, ... actors beside the local `cheartflow synth`, in one run.

    python benchmarks/bench_ray.py [--model DIR] [--count 256] [--actors 1,2] [--steps 1] [--backend onnxruntime]

Writes `--count` phantom edge sketches as PNG files, then synthesizes the folder into PNGs: once with the local
path (`cheartflow -q synth`, a fresh process: model load included) and once per actor count with
`synthesize_with_ray` on a local Ray instance of this machine's CPUs (actor start and model load included;
`ray.init` is timed apart). Every run's outputs are compared with the local ones (they must be equal). Writes
`benchmarks/results/ray-<device>.{json,md,png}`. Run it on an otherwise idle machine: it times the CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # results.py and benchlib/

import results  # noqa: E402
from benchlib.sketches import sketches_u8  # noqa: E402


def write_sketch_files(folder: Path, count: int, resolution: int) -> None:
    import cv2

    folder.mkdir(parents=True)
    for i, sketch in enumerate(sketches_u8(count, resolution)):
        cv2.imwrite(str(folder / f"sketch_{i:04d}.png"), sketch)


def read_outputs(folder: Path) -> dict[str, np.ndarray]:
    import cv2

    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))}


def time_local(inputs: Path, out: Path, args: argparse.Namespace) -> float:
    cmd = ["cheartflow", "-q", "synth", str(inputs), "--out", str(out), "--steps", str(args.steps),
           "--backend", args.backend, "--seed", "0"] + (["--model", str(args.model)] if args.model else [])
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def time_ray(inputs: Path, out: Path, actors: int, args: argparse.Namespace) -> float:
    from cheartflow_sdk.ray_synth import synthesize_with_ray

    start = time.perf_counter()
    synthesize_with_ray(inputs, out, model=args.model, backend=args.backend, steps=args.steps, seed=0,
                        num_actors=actors, files_per_batch=args.files_per_batch, batch_size=args.files_per_batch)
    return time.perf_counter() - start


def markdown(doc: dict, png_name: str) -> str:
    m = doc["metrics"]
    rows = [f"| local `cheartflow synth` | - | {m['local_seconds']:.2f} | {m['local_images_per_s']:.1f} | 1.00 | - |"]
    for a in doc["actor_counts"]:
        rows.append(f"| Ray Data | {a} | {m[f'ray_{a}_seconds']:.2f} | {m[f'ray_{a}_images_per_s']:.1f} | "
                    f"{m[f'ray_{a}_vs_local']:.2f} | {m[f'ray_{a}_equal_to_local']} |")
    return "\n".join([
        f"# Ray Data batch synthesis ({doc['cpu']})", "",
        f"{m['count']} sketch files, {m['steps']} step(s), backend {m['backend']}, {m['cpus']} CPUs, "
        f"{doc['date']}; `ray.init` took {m['ray_init_seconds']:.1f} s (not in the times below).", "",
        f"Command: `{doc['command']}`", "",
        "| path | actors | seconds (model load included) | images/s | vs local | outputs equal local |",
        "|---|---:|---:|---:|---:|---|", *rows, "", f"![throughput]({png_name})", ""])


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from io import BytesIO

    from cheartflow_sdk.atomic import atomic_write_bytes

    m = doc["metrics"]
    names = ["local"] + [f"Ray, {a} actor{'s' * (a > 1)}" for a in doc["actor_counts"]]
    rates = [m["local_images_per_s"]] + [m[f"ray_{a}_images_per_s"] for a in doc["actor_counts"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(names, rates, color=["#888"] + ["#3b7dd8"] * len(doc["actor_counts"]))
    ax.set_ylabel("images / s (files in, files out)")
    ax.set_title(f"{m['count']} files, {m['steps']} step(s), {m['backend']}, {m['cpus']} CPUs", fontsize=9)
    fig.tight_layout()
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="model folder (default: the bundled edges model)")
    p.add_argument("--count", type=int, default=256, help="sketch files to synthesize")
    p.add_argument("--actors", default="1,2", help="comma-separated actor counts")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--files-per-batch", type=int, default=16)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR)
    args = p.parse_args(argv)
    import ray

    actor_counts = [int(a) for a in args.actors.split(",")]
    cpus = os.cpu_count() or 1
    metrics: dict = {"count": args.count, "steps": args.steps, "backend": args.backend, "cpus": cpus}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "sketches"
        write_sketch_files(inputs, args.count, args.resolution)
        local_seconds = time_local(inputs, Path(tmp) / "local", args)
        reference = read_outputs(Path(tmp) / "local")
        metrics.update(local_seconds=round(local_seconds, 3), local_images_per_s=round(args.count / local_seconds, 2))
        start = time.perf_counter()
        ray.init(num_cpus=cpus, log_to_driver=False, include_dashboard=False)
        metrics["ray_init_seconds"] = round(time.perf_counter() - start, 2)
        try:
            for actors in actor_counts:
                out = Path(tmp) / f"ray-{actors}"
                seconds = time_ray(inputs, out, actors, args)
                outputs = read_outputs(out)
                equal = outputs.keys() == reference.keys() and all(np.array_equal(outputs[k], reference[k]) for k in reference)
                metrics.update({f"ray_{actors}_seconds": round(seconds, 3),
                                f"ray_{actors}_images_per_s": round(args.count / seconds, 2),
                                f"ray_{actors}_vs_local": round(local_seconds / seconds, 3),
                                f"ray_{actors}_equal_to_local": equal})
                print(f"ray, {actors} actor(s): {seconds:.2f} s, {args.count / seconds:.1f} images/s, equal: {equal}",
                      flush=True)
        finally:
            ray.shutdown()
    name = f"ray-{results.slug(results.cpu_name())}"
    path = results.write_report(name, metrics, {"cpu": results.cpu_name(), "actor_counts": actor_counts},
                                args.results_dir, plot, markdown)
    print(f"local: {local_seconds:.2f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
