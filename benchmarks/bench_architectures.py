#!/usr/bin/env python
"""U-Net shapes side by side on the CPU engines: what an architecture costs at run time, before training it.

    python benchmarks/bench_architectures.py [--presets small,small-patch2] [--engines onnxruntime-fp32,openvino-bf16]

Each `cheartflow train --preset` named is built with random weights (the speed of an engine does not depend
on them), exported with the SDK's exporters behind their gates, and measured by bench_cpu_engines' child
(its own process per engine: batch-1 host-to-host latency for 1 and 2 steps, 1-step throughput at batch
1/8/16/64, RSS). Everything is measured in one run and reported as ratios to the first preset's first
engine, beside each preset's FLOPs per image and parameter count. Writes ``architectures-<cpu>.json``,
``.md`` and ``.png`` into the results folder. Quality is not measured here: that needs training (val).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # an installed cheartflow_sdk wins; else this checkout
sys.path.insert(0, str(HERE))

import bench_cpu_engines as engines  # noqa: E402
import results  # noqa: E402
from benchlib.models import random_init_model  # noqa: E402
from benchlib.pipeline_report import plot  # noqa: E402
from benchlib.roofline import cpu_bf16_matmul_peak_gflops, flops_per_image  # noqa: E402

log = logging.getLogger("bench_architectures")


def measure_preset(preset: str, wanted: list[str], root: Path, spec: dict[str, Any], quick: bool) -> dict[str, Any]:
    """FLOPs, parameters and every wanted engine's measurements of one preset (random weights)."""
    from cheartflow_sdk.cli.train import PRESETS
    from cheartflow_sdk.export import parity_inputs
    from cheartflow_sdk.models.files import load_encoder

    src, work, out = root / preset / "src", root / preset / "work", root / preset / "out"
    out.mkdir(parents=True)
    random_init_model(src, **PRESETS[preset], **({"resolution": 32} if quick else {}))
    skipped: dict[str, str] = {}
    args = argparse.Namespace(calibration=None, calibration_count=16)
    engines.prepare_engines(src, work, wanted, args, skipped)
    enc = load_encoder(work)
    row: dict[str, Any] = {"flops_per_image": flops_per_image(enc, enc.config.resolution),
                           "parameters": sum(p.numel() for p in enc.parameters()), "engines": {}, "skipped": skipped}
    gate_x, gate_t = parity_inputs(enc.config.resolution)
    np.savez(out / "gate_inputs.npz", x=gate_x, t=gate_t)
    for kind in wanted:
        if kind in skipped:
            continue
        log.info("measuring %s on %s", preset, kind)
        try:
            row["engines"][kind] = engines.run_engine(kind, {**spec, "work": str(work), "out": str(out),
                                                             "gate_inputs": str(out / "gate_inputs.npz")}, 1800)
        except Exception as exc:  # noqa: BLE001 - one engine failing does not stop the others
            skipped[kind] = f"failed: {type(exc).__name__}: {exc}"
    return row


def derive(presets: dict[str, dict[str, Any]], peak_bf16: float | None) -> dict[str, Any]:
    """The flat configs (`preset/engine`) with ratios to the first measured one, for the report and the plot."""
    configs = {f"{p}/{k}": {**c, "flops_per_image": row["flops_per_image"]}
               for p, row in presets.items() for k, c in row["engines"].items()}
    if not configs:
        return configs
    ref = next(iter(configs.values()))
    for c in configs.values():
        peaks = {"bf16": peak_bf16} if peak_bf16 else {}  # none on a CPU without native bf16
        c["derived"] = engines.speed_ratios(c, ref, c["flops_per_image"], peaks, "")
    return configs


def markdown(doc: dict[str, Any], presets: dict[str, dict[str, Any]], configs: dict[str, Any], png: str) -> str:
    ref = next(iter(configs), "-")
    lines = [f"# U-Net shapes on the CPU engines ({'QUICK SMOKE RUN, numbers meaningless' if doc['quick'] else 'full run'})",
             "", f"- CPU: {doc['host']['cpu']}, {doc['host']['usable_cores']} usable cores; load average at start "
             f"{doc['host']['loadavg_start']}", f"- date: {doc['date']}; command: `{doc['command']}`",
             f"- versions: {', '.join(f'{k} {v}' for k, v in doc['versions'].items())}",
             f"- bf16 matmul peak (this run): {engines._fmt(doc['peak_gflops_bf16'])} GFLOP/s; ratios are to `{ref}`",
             "- random weights (speed only; the quality of a shape needs training)", "", f"![latency and throughput]({png})", "",
             "| preset | GFLOP / image | parameters |", "| --- | ---: | ---: |"]
    lines += [f"| {p} | {row['flops_per_image'] / 1e9:.3f} | {row['parameters'] / 1e6:.2f} M |" for p, row in presets.items()]
    lines += ["", "| preset / engine | 1-step b1 p50 / p99 ms | 2-step b1 p50 ms | images/s b1 / b8 / b16 / b64 "
              "| x ref b1 / b16 | % bf16 peak b16 | RSS load MB |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in configs.items():
        lat, thr, d = c["latency_b1"], c["throughput_ips"]["1step"], c["derived"]
        ips = " / ".join(f"{thr[b]:.1f}" for b in sorted(thr, key=int))
        lines.append(f"| {name} | {lat['1step']['p50_ms']:.2f} / {lat['1step']['p99_ms']:.2f} | {lat['2step']['p50_ms']:.2f} "
                     f"| {ips} | {d['speedup_1step_b1']:.2f} / {d.get('throughput_ratio_1step_b16', float('nan')):.2f} "
                     f"| {100 * d.get('fraction_of_bf16_peak_1step_b16', float('nan')):.0f} | {c['rss_after_load_mb']:.0f} |")
    skipped = {f"{p}/{k}": r for p, row in presets.items() for k, r in row["skipped"].items()}
    if skipped:
        lines += ["", "| not measured | reason |", "| --- | --- |"]
        lines += [f"| {n} | {r.replace('|', '/')[:300]} |" for n, r in skipped.items()]
    return "\n".join(lines) + "\n"


def flatten(configs: dict[str, Any], peak_bf16: float | None) -> dict[str, Any]:
    m: dict[str, Any] = {"peak_gflops_bf16": peak_bf16}
    for name, c in configs.items():
        m[f"latency_p50_ms_1step_b1@{name}"] = c["latency_b1"]["1step"]["p50_ms"]
        m[f"latency_p50_ms_2step_b1@{name}"] = c["latency_b1"]["2step"]["p50_ms"]
        m.update({f"throughput_ips_1step_b{b}@{name}": v for b, v in c["throughput_ips"]["1step"].items()})
        m.update({f"{k}@{name}": v for k, v in c["derived"].items()})
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="small,small-patch2", help="comma-separated `cheartflow train` presets")
    p.add_argument("--engines", default="onnxruntime-fp32,openvino-bf16", help="bench_cpu_engines engine kinds")
    p.add_argument("--quick", action="store_true", help="smoke run: 32x32, few requests; numbers mean nothing")
    p.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    from cheartflow_sdk.cli.train import PRESETS
    from cheartflow_sdk.cpu_features import usable_cores

    names = [n.strip() for n in args.presets.split(",") if n.strip()]
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [n for n in names if n not in PRESETS] + [e for e in wanted if e not in engines.ENGINES]
    if bad or not names or not wanted:
        raise SystemExit(f"unknown or missing presets/engines {bad}; presets: {sorted(PRESETS)}, engines: {engines.ENGINES}")
    q = args.quick
    spec = {**engines.measurement_spec(q), "val_sketches": None}
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    peak = cpu_bf16_matmul_peak_gflops(256 if q else 2048)
    with tempfile.TemporaryDirectory(prefix="cf-architectures-") as tmp:
        presets = {n: measure_preset(n, wanted, Path(tmp), spec, q) for n in names}
    peak = None if peak is None else max(peak, cpu_bf16_matmul_peak_gflops(256 if q else 2048) or 0.0)
    configs = derive(presets, peak)
    host = {"cpu": results.cpu_name(), "usable_cores": usable_cores(), "loadavg_start": [round(v, 2) for v in load_start]}
    name = "architectures-quick" if q else f"architectures-{results.slug(host['cpu'])}"
    extra = {"quick": q, "host": host, "peak_gflops_bf16": peak, "presets": presets,
             "elapsed_s": round(time.perf_counter() - t0, 1)}
    title = f"cheartflow-sdk U-Net shapes on {host['cpu']}, {host['usable_cores']} cores"
    json_path = results.write_report(name, flatten(configs, peak), extra, args.results_dir,
                                     lambda doc, png: plot({"configs": configs}, f"{title} ({doc['date']})", png),
                                     lambda doc, png_name: markdown(doc, presets, configs, png_name))
    print(f"wrote {json_path}, {name}.md and {name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
