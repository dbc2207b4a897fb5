"""The pipeline benchmarks' report: the flat metrics object, the markdown tables and the throughput/latency plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .pipeline_configs import COMPILE_REF, REF

TARGETS = {  # issue 5, H100, 128x128
    "latency_p50_ms_1step_b1": ("<=", 0.5),
    "latency_p50_ms_2step_b1": ("<=", 0.8),
    "latency_p99_over_p50_1step_b1": ("<=", 1.5),
    "throughput_ratio_vs_eager_fp32_b256": (">=", 10.0),
    "throughput_ratio_vs_compile_fp16_b256": (">=", 1.3),
}


def flatten(report: dict[str, Any], on_gpu: bool) -> dict[str, Any]:
    """The flat `metrics` object: headline figures, then per-configuration ones as 'metric@config'."""
    m: dict[str, Any] = {}
    configs = report["configs"]
    for name, c in configs.items():
        for k, v in c["latency_b1"].items():
            m[f"latency_p50_ms_{k}_b1@{name}"] = v["p50_ms"]
            m[f"latency_p99_ms_{k}_b1@{name}"] = v["p99_ms"]
            m[f"latency_n_{k}_b1@{name}"] = v["n"]
        for k, row in c["throughput_ips"].items():
            for b, ips in row.items():
                m[f"throughput_ips_{k}_b{b}@{name}"] = ips
                ref = configs.get(REF, {}).get("throughput_ips", {}).get(k, {}).get(b)
                if ref:
                    m[f"throughput_ratio_vs_eager_fp32_{k}_b{b}@{name}"] = ips / ref
                flops = report["flops_per_image"] * int(k[0])
                m[f"achieved_tflops_{k}_b{b}@{name}"] = ips * flops / 1e12
        m[f"cold_warmup_s@{name}"] = c["warmup_s"]
        if "graph_equals_eager" in c:
            m[f"graph_equals_eager@{name}"] = c["graph_equals_eager"]
        if "torch_max_memory_allocated_mb" in c:
            m[f"torch_max_memory_allocated_mb@{name}"] = c["torch_max_memory_allocated_mb"]
        for key, v in c.get("nvml_throughput", {}).items():
            m[f"nvml_{key}@{name}"] = v
    # headline: the best configuration of the SDK runtime (GPU), or of all pipelines (CPU)
    cands = {n: c for n, c in configs.items() if c.get("runtime")} or configs
    lat_cands = {n: c for n, c in cands.items() if "1step" in c["latency_b1"]}
    if lat_cands:
        best = min(lat_cands, key=lambda n: lat_cands[n]["latency_b1"]["1step"]["p50_ms"])
        lb = lat_cands[best]["latency_b1"]
        m["headline_latency_config"] = best
        m["latency_p50_ms_1step_b1"] = lb["1step"]["p50_ms"]
        m["latency_p99_ms_1step_b1"] = lb["1step"]["p99_ms"]
        m["latency_p99_over_p50_1step_b1"] = lb["1step"]["p99_ms"] / lb["1step"]["p50_ms"]
        if "2step" in lb:
            m["latency_p50_ms_2step_b1"] = lb["2step"]["p50_ms"]
            m["latency_p99_ms_2step_b1"] = lb["2step"]["p99_ms"]
        m["latency_requests_b1"] = lb["1step"]["n"]
    measured = {b for c in cands.values() for b in c["throughput_ips"]["1step"]}
    ref_batch = "256" if "256" in measured else (max(measured, key=int) if measured else "")
    thr_cands = {n: c for n, c in cands.items() if ref_batch in c["throughput_ips"]["1step"]}
    if thr_cands:
        best = max(thr_cands, key=lambda n: thr_cands[n]["throughput_ips"]["1step"][ref_batch])
        ips = thr_cands[best]["throughput_ips"]["1step"][ref_batch]
        m["headline_throughput_config"] = best
        m[f"throughput_ips_1step_b{ref_batch}"] = ips
        for ref, key in ((REF, "eager_fp32"), (COMPILE_REF, "compile_fp16")):
            base = configs.get(ref, {}).get("throughput_ips", {}).get("1step", {}).get(ref_batch)
            if base:
                m[f"throughput_ratio_vs_{key}_b{ref_batch}"] = ips / base
        roof = report.get("roofline", {})
        if roof.get("peak_tflops"):
            m[f"roofline_fraction_b{ref_batch}"] = ips * report["flops_per_image"] / 1e12 / roof["peak_tflops"]
        elif roof.get("peak_gflops_cpu_fp32"):
            m[f"roofline_fraction_b{ref_batch}"] = ips * report["flops_per_image"] / 1e9 / roof["peak_gflops_cpu_fp32"]
    checks = [c["graph_equals_eager"] for c in configs.values() if "graph_equals_eager" in c]
    if checks:
        m["graph_replays_equal_eager"] = all(checks)
    m["flops_per_image_per_step"] = report["flops_per_image"]
    for key, v in report.get("roofline", {}).items():
        m[f"roofline_{key}"] = v
    for key, v in report.get("cold_start", {}).items():
        m[f"cold_start_{key}"] = v
    for key, v in report.get("stream_b1", {}).items():
        m[f"stream_b1_{key}"] = v
    for key, v in report.get("nvml", {}).items():
        m[f"nvml_{key}"] = v
    if on_gpu and not report["quick"]:
        for key, (op, target) in TARGETS.items():
            if key in m:
                m[f"target_met_{key}"] = bool(m[key] <= target if op == "<=" else m[key] >= target)
    return m


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def markdown(doc: dict[str, Any], report: dict[str, Any], png_name: str) -> str:
    m = doc["metrics"]
    configs = report["configs"]
    where = doc["device"] if report["on_gpu"] else f"CPU ({doc['host']['cpu']}, {doc['host']['cpu_count']} cores)"
    lines = [f"# Pipeline benchmark on {where}", "",
             f"- date: {doc['date']}", f"- command: `{doc['command']}`",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()),
             (f"- host: {doc['host']['cpu']}, {doc['host']['cpu_count']} cores; 1-min load average "
              f"{doc['host']['loadavg_1min_start']} at the start, {doc['host']['loadavg_1min_end']} at the end"),
             f"- model: {report['model']}",
             (f"- resolution {report['resolution']}, {_fmt(report['flops_per_image'] / 1e9)} GFLOP per image per "
              "encoder call (FlopCounterMode)"),
             "- every request host to host: uint8 sketches in, uint8 images out; two-step uses t_1 = 0.5"]
    if report["quick"]:
        lines.append("- **--quick run: few requests, small batches; not for quoting**")
    if report.get("partial"):
        lines.append("- **partial results: the run stopped before every configuration was measured**")
    on_gpu = report["on_gpu"]
    lines += ["", f"![throughput and latency]({png_name})", "", "## Headline", ""]
    lines += (["| metric | value | target (issue 5, H100) |", "| --- | --- | --- |"] if on_gpu else
              ["The issue's targets are for an H100 GPU; this is a CPU run.", "", "| metric | value |", "| --- | --- |"])
    keys = ["latency_p50_ms_1step_b1", "latency_p99_ms_1step_b1", "latency_p99_over_p50_1step_b1",
            "latency_p50_ms_2step_b1", "latency_p99_ms_2step_b1", "headline_latency_config"]
    keys += sorted(k for k in m if k.startswith(("throughput_ratio_vs_", "roofline_fraction_b", "throughput_ips_1step_b"))
                   and "@" not in k)
    keys += ["headline_throughput_config", "graph_replays_equal_eager", "stream_b1_saturated_drift_ratio", "stream_b1_paced_p50_over_single_p50",
             "cold_start_load_s", "cold_start_warmup_s", "cold_start_first_request_ms_after_warmup"]
    for key in keys:
        if key in m:
            if not on_gpu:
                lines.append(f"| {key} | {_fmt(m[key])} |")
                continue
            op, target = TARGETS.get(key, ("", None))
            met = m.get(f"target_met_{key}")
            tgt = f"{op} {target}" + ("" if met is None else (" (met)" if met else " (missed)")) if target else ""
            lines.append(f"| {key} | {_fmt(m[key])} | {tgt} |")
    lines += ["", "## Latency, batch 1 (ms, host to host)", "",
              "| config | description | 1-step p50 | 1-step p99 | 2-step p50 | 2-step p99 | requests |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in configs.items():
        lb = c["latency_b1"]
        if not lb:
            continue
        one, two = lb.get("1step", {}), lb.get("2step", {})
        lines.append(f"| {name} | {c['description']} | {_fmt(one.get('p50_ms'))} | {_fmt(one.get('p99_ms'))} | "
                     f"{_fmt(two.get('p50_ms'))} | {_fmt(two.get('p99_ms'))} | {one.get('n', '-')} |")
    all_b = sorted({int(b) for c in configs.values() for b in c["throughput_ips"]["1step"]})
    for k in ("1step", "2step"):
        lines += ["", f"## Throughput, {k[0]}-step (images/s; ratio to {REF} in brackets)", "",
                  "| config | " + " | ".join(f"b={b}" for b in all_b) + " |", "| --- |" + " --- |" * len(all_b)]
        for name, c in configs.items():
            cells = []
            for b in all_b:
                ips = c["throughput_ips"][k].get(str(b))
                ref = configs.get(REF, {}).get("throughput_ips", {}).get(k, {}).get(str(b))
                cells.append("-" if ips is None else _fmt(ips) + (f" ({ips / ref:.2g}x)" if ref and name != REF else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rf = report.get("roofline", {})
    if rf:
        lines += ["", "## Roofline", ""] + [f"- {k}: {_fmt(v)}" for k, v in rf.items()]
        lines.append("- achieved TFLOP/s per configuration: `achieved_tflops_<k>step_b<B>@<config>` in the JSON")
    for title, key in (("Cold start", "cold_start"), ("Streaming a long run of batch-1 requests (one-step)", "stream_b1"),
                       ("GPU telemetry (NVML, whole run)", "nvml")):
        if report.get(key):
            lines += ["", f"## {title}", ""] + [f"- {k}: {_fmt(v)}" for k, v in report[key].items()]
    if report.get("stream_b1_config"):
        lines.append(f"- configuration: {report['stream_b1_config']}")
    if report["skipped"]:
        lines += ["", "## Not measured", "", "| backend | reason |", "| --- | --- |"]
        lines += [f"| {n} | {r} |" for n, r in report["skipped"].items()]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], title: str, path: Path) -> None:
    """Throughput against batch size and batch-1 latency bars of every configuration, as a PNG at `path`."""
    import matplotlib

    from cheartflow_sdk.atomic import atomic_output

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = report["configs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, c) in enumerate(configs.items()):
        col = colors[i % len(colors)]
        for k, style in (("1step", "-o"), ("2step", "--s")):
            row = c["throughput_ips"][k]
            if row:
                bs = sorted(int(b) for b in row)
                ax1.plot(bs, [row[str(b)] for b in bs], style, color=col, ms=4, label=f"{name} {k[0]}-step")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("images / s (host to host)")
    ax1.set_title("Throughput")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    names = [n for n, c in configs.items() if c["latency_b1"]]
    width = 0.2
    xs = np.arange(len(names))
    for j, (k, q) in enumerate((("1step", "p50_ms"), ("1step", "p99_ms"), ("2step", "p50_ms"), ("2step", "p99_ms"))):
        vals = [configs[n]["latency_b1"].get(k, {}).get(q, np.nan) for n in names]
        ax2.bar(xs + (j - 1.5) * width, vals, width, label=f"{k[0]}-step {q[:3]}")
    ax2.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("ms per batch-1 request (host to host)")
    ax2.set_title("Latency, batch 1")
    ax2.grid(True, axis="y", which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
