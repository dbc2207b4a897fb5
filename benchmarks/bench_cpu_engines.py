#!/usr/bin/env python
"""CPU engines side by side (issue 16): every CPU engine of one model, measured in one run, each in its own process.

    python benchmarks/bench_cpu_engines.py --model DIR [--calibration NPZ] [--val NPZ] [--quick]
                                           [--engines a,b,...] [--results-dir DIR] [--work DIR]

Engines (each built with the SDK's own exporters and backends; one that cannot be built or fails its
quality gate is listed as not measured, with the reason):

    onnxruntime-fp32     model.onnx in ONNX Runtime (the reference of the ratios)
    torch-eager-fp32     the PyTorch encoder (backend "torch")
    torch-eager-bf16     the same under torch.autocast("cpu", bfloat16) (convolutions and matmuls in bf16)
    torch-compiled-fp32  an AOTInductor CPU package (torch.compile's ahead-of-time path, backend "torch-compiled")
    openvino-fp32        the OpenVINO IR (`--format openvino`) with the fp32 precision hint
    openvino-bf16        the same with the bf16 hint (only where the CPU has native bf16)
    onnxruntime-int8     static int8 QDQ (`--format onnx-int8`), calibrated on --calibration
    openvino-int8        NNCF int8 IR (`--format openvino-int8`), calibrated on --calibration

Only when named in --engines (the comparison of the GroupNorm forms; the IRs above use the default,
"channelwise", onnx_groupnorm.ChannelwiseGroupNorm):

    openvino-fp32-two-pass, openvino-bf16-two-pass   the OpenVINO IR built from the two-pass GroupNorm graph
                         (`groupnorm="two-pass"`)
    openvino-bf16-fused, openvino-int8-fused         the OpenVINO IRs with one GroupNormalization op per
                         GroupNorm (`groupnorm="fused"`)

For each engine, in a fresh subprocess (so its peak RSS is its own): batch-1 host-to-host latency p50/p99
(uint8 sketch in, uint8 image out, through Pipeline) for 1 and 2 steps, 1-step throughput at batch
1/8/16/64, RSS after loading and batch-1 warm-up, RSS after the throughput batches (an engine may pay for
larger batches on their first request) and the process's peak RSS, and its outputs: the encoder on the
export gate's inputs (PSNR against the fp32 PyTorch encoder, as the gate computes it) and one-step images of
the --val slices (SSIM against the real images, and its difference to the fp32 PyTorch encoder's SSIM).
The parent measures the CPU's fp32 and bf16 matmul peaks (torch.matmul and ONNX Runtime MatMul, best of
the start and the end of the run) and reports every engine as ratios: to ONNX Runtime fp32, and as the
fraction of each peak its batch-16 throughput reaches (FLOPs per image from torch's flop counter).

Writes ``cpu-engines-<sketch kind>-<cpu>.json`` (benchmarks/results.py format: device, date, versions, command, flat
metrics), ``.md`` (tables, the issue's targets, the measured registry order for
backends.registry.CPU_ORDER) and ``.png`` into the results folder. --quick is a smoke run (tiny sizes, a
few requests, no torch-compiled unless asked): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.append(str(REPO))  # an installed cheartflow_sdk wins; else this checkout
sys.path.insert(0, str(HERE))  # results.py and benchlib/: the helpers every benchmark shares

import results  # noqa: E402
from benchlib.pipeline_configs import numpy_config  # noqa: E402
from benchlib.pipeline_measure import measure_latency, measure_throughput  # noqa: E402
from benchlib.pipeline_report import plot  # noqa: E402
from benchlib.roofline import cpu_bf16_matmul_peak_gflops, cpu_fp32_matmul_peak_gflops, flops_per_image  # noqa: E402
from benchlib.sketches import sketches_u8  # noqa: E402
from benchlib.timing import latency_summary  # noqa: E402

log = logging.getLogger("bench_cpu_engines")

ENGINES = ("onnxruntime-fp32", "torch-eager-fp32", "torch-eager-bf16", "torch-compiled-fp32", "openvino-fp32",
           "openvino-bf16", "onnxruntime-int8", "openvino-int8")
# measured only when --engines names them: OpenVINO IRs of another GroupNorm form, named "<engine>-<form>"
OPT_IN_ENGINES = ("openvino-fp32-two-pass", "openvino-bf16-two-pass", "openvino-bf16-fused", "openvino-int8-fused")
OPT_IN_FORMS = ("two-pass", "fused")


def groupnorm_variant(kind: str) -> tuple[str, str | None]:
    """("openvino-bf16", "fused") for "openvino-bf16-fused"; (kind, None) for an engine of the default form."""
    for form in OPT_IN_FORMS:
        if kind.endswith("-" + form):
            return kind[:-len(form) - 1], form
    return kind, None


def variant_ir(kind: str) -> str:
    """The IR file name of an OpenVINO engine kind, e.g. model.int8-fused.xml for "openvino-int8-fused"."""
    from cheartflow_sdk import contract

    base, form = groupnorm_variant(kind)
    name = contract.OPENVINO_INT8_FILENAME if base == "openvino-int8" else contract.OPENVINO_FILENAME
    return name if form is None else name.replace(".xml", f"-{form}.xml")


REF = "onnxruntime-fp32"
BATCHES = (1, 8, 16, 64)
QUICK_BATCHES = (1, 4)
# the registry kind (backends.registry.CPU_ORDER) each measured engine stands for
REGISTRY_KIND = {"onnxruntime-fp32": "onnxruntime-fp32", "torch-eager-fp32": "torch-fp32",
                 "torch-compiled-fp32": "torch-compiled-fp32", "openvino-fp32": "openvino-fp32",
                 "openvino-bf16": "openvino-bf16", "onnxruntime-int8": "onnxruntime-int8", "openvino-int8": "openvino-int8"}
# issue 16's targets for the best engine (2 cores, a model of 3.76 GFLOP per image; scale the absolute ones)
TARGETS = {"speedup_vs_ort_fp32_1step_b1": (">=", 2.5), "throughput_ratio_vs_ort_fp32_1step_b16": (">=", 2.5),
           "gate_psnr_db": (">=", 35.0), "val_ssim_abs_delta_vs_fp32": ("<=", 0.01),
           "latency_p99_over_p50_1step_b1": ("<=", 1.3), "fraction_of_bf16_peak_1step_b16": (">=", 0.5),
           "rss_after_load_mb": ("<=", 300.0)}
QUALITY_MIN_PSNR_DB = 35.0
QUALITY_MAX_SSIM_DELTA = 0.01


# =============================================================================================
# The child: one engine in its own process
# =============================================================================================


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc (ru_maxrss where /proc is missing)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


class TorchAutocastEncoder:
    """The SDK's PyTorch encoder under torch.autocast(cpu, bfloat16): what "PyTorch eager bf16" means here."""

    name = "torch-autocast-bf16"

    def __init__(self, model_dir: Path):
        from cheartflow_sdk.backends.torch_backend import TorchEncoder

        self._inner = TorchEncoder(model_dir, device="cpu")
        self.config = self._inner.config

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self._inner(x, t)


def open_engine(kind: str, work: Path) -> tuple[Any, Path]:
    """(encoder, source) of a benchmark engine, through the SDK's registry and backends."""
    from cheartflow_sdk import contract
    from cheartflow_sdk.backends import registry

    if kind == "torch-eager-bf16":
        return TorchAutocastEncoder(work), work
    if kind.startswith(("openvino-fp32", "openvino-bf16")):
        from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder

        path = work / variant_ir(kind)
        return OpenVINOEncoder(path, device="cpu", precision=kind.split("-")[1]), path
    if kind == "openvino-int8-fused":
        return registry.open_encoder(work / variant_ir(kind), "openvino", "cpu"), work / variant_ir(kind)
    files = {"onnxruntime-fp32": (contract.ONNX_FILENAME, "onnxruntime"), "torch-eager-fp32": (None, "torch"),
             "torch-compiled-fp32": (contract.COMPILED_FILENAME, "torch-compiled"),
             "onnxruntime-int8": (contract.ONNX_INT8_FILENAME, "onnxruntime"),
             "openvino-int8": (contract.OPENVINO_INT8_FILENAME, "openvino")}
    name, backend = files[kind]
    path = work / name if name else work
    return registry.open_encoder(path, backend, "cpu"), path


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one engine (see the module doc); writes its outputs as .npy files into spec["out"]."""
    work, out = Path(spec["work"]), Path(spec["out"])
    kind = spec["kind"]
    rss_start, _ = rss_mb()
    t0 = time.perf_counter()
    encoder, source = open_engine(kind, work)
    engine = numpy_config(kind, kind, encoder, source, tuple(spec["batches"]))
    load_s = time.perf_counter() - t0
    warm_s = engine.pipe.warmup((1, 2), None, np.uint8, np.uint8)  # batch 1 only: RSS after load is the model's
    rss_load, _ = rss_mb()
    cfg = encoder.config
    res = cfg.resolution
    x1 = sketches_u8(1, res, cfg.sketch_kind)
    lat: dict[str, Any] = {}
    for k in (1, 2):
        times = measure_latency(engine, x1, k, spec["requests"], spec["warmup"], spec["max_seconds"], spec["min_requests"])
        lat[f"{k}step"] = latency_summary(times)
    thr: dict[str, dict[str, float]] = {"1step": {}, "2step": {}}
    for b in spec["batches"]:
        ips, _ = measure_throughput(engine, sketches_u8(b, res, cfg.sketch_kind), 1, spec["throughput_seconds"],
                                    spec["max_iters"])
        thr["1step"][str(b)] = ips
    rss_batches, _ = rss_mb()  # an engine that pays for batches on their first request (arena, streams graph)
    gate = np.load(spec["gate_inputs"])
    np.save(out / f"{kind}.gate.npy", np.asarray(encoder(gate["x"], gate["t"]), np.float32))
    if spec.get("val_sketches"):
        from cheartflow_sdk.pipeline import Pipeline

        pipe = Pipeline(encoder, source)
        np.save(out / f"{kind}.val.npy", pipe.synthesize(np.load(spec["val_sketches"]), steps=1, seed=0,
                                                         batch_size=16, dtype=np.uint8))
    _, rss_peak = rss_mb()
    return {"kind": kind, "backend": getattr(encoder, "name", kind), "description": engine.description,
            "load_s": load_s, "warmup_s": warm_s, "rss_start_mb": rss_start, "rss_after_load_mb": rss_load,
            "rss_after_batches_mb": rss_batches, "peak_rss_mb": rss_peak, "latency_b1": lat, "throughput_ips": thr,
            "threads": {"torch": _torch_threads(), "usable_cores": _cores()}}


def _torch_threads() -> int | None:
    return sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None


def _cores() -> int:
    from cheartflow_sdk.cpu_features import usable_cores

    return usable_cores()


# =============================================================================================
# The parent: engines, references, peaks, report
# =============================================================================================


def prepare_engines(model_dir: Path, work: Path, wanted: list[str], args: argparse.Namespace,
                    skipped: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Copy the checkpoint into `work` and export every engine file the wanted engines need (each behind its
    gate); returns per-engine export facts. Failures go to `skipped` with the reason."""
    from cheartflow_sdk.cpu_features import has_native_bf16
    from cheartflow_sdk.export import export_engine

    work.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model_dir / name, work / name)
    exports = {"onnxruntime-fp32": ("onnx", {}), "torch-compiled-fp32": ("torch-compiled", {"device": "cpu"}),
               "openvino-fp32": ("openvino", {}), "openvino-bf16": ("openvino", {}),
               "onnxruntime-int8": ("onnx-int8", {"calibration": args.calibration, "calibration_count": args.calibration_count}),
               "openvino-int8": ("openvino-int8", {"calibration": args.calibration, "calibration_count": args.calibration_count})}
    for kind in OPT_IN_ENGINES:
        fmt, opts = exports[groupnorm_variant(kind)[0]]
        exports[kind] = (fmt, {**opts, "out": work / variant_ir(kind), "groupnorm": groupnorm_variant(kind)[1]})
    facts: dict[str, dict[str, Any]] = {}
    done: dict[tuple[str, str | None], Any] = {}
    for kind in wanted:
        if kind.startswith("openvino-bf16") and not has_native_bf16():
            skipped[kind] = "this CPU has no native bf16 (AVX512-BF16 / AMX): OpenVINO would run fp32"
            continue
        if kind not in exports:
            facts[kind] = {}
            continue
        fmt, opts = exports[kind]
        key = fmt, opts.get("groupnorm")
        if key not in done:
            t0 = time.perf_counter()
            try:
                path, report = export_engine(work, fmt, **opts)
                done[key] = {"file": path.name, "export_s": round(time.perf_counter() - t0, 1),
                             "export_gate_psnr_db": None if report is None else round(min(report.psnr_db, 999.0), 2)}
            except Exception as exc:  # noqa: BLE001 - a missing runtime or a failed gate is a result
                done[key] = exc
                log.warning("%s: export %s failed: %s", kind, fmt, exc)
        if isinstance(done[key], Exception):
            skipped[kind] = f"export --format {fmt} failed: {type(done[key]).__name__}: {done[key]}"
        else:
            facts[kind] = dict(done[key])
    return facts


def val_data(path: str | None, cfg: Any, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 sketches [N,R,R] of the model's kind, real images in [0, 1] [N,1,R,R]) of `count` val slices."""
    if not path:
        return None
    from cheartflow_sdk.export.calibration import calibration_sketches

    from cheartflow_sdk.data import load_slices

    sketches, _ = calibration_sketches(path, cfg, count)
    slices = load_slices(path)
    pick = np.unique(np.linspace(0, len(slices.images) - 1, min(count, len(slices.images))).round().astype(int))
    truth = np.clip((slices.images[pick].astype(np.float32) + 1) / 2, 0, 1)
    return (np.round(sketches[:, 0] * 255).astype(np.uint8), truth)


def measurement_spec(quick: bool, requests: int | None = None) -> dict[str, Any]:
    """How much the child measures: batch sizes, batch-1 requests (default 300; 10 quick), warm-up and time caps."""
    return {"batches": list(QUICK_BATCHES if quick else BATCHES), "requests": requests or (10 if quick else 300),
            "min_requests": 5 if quick else 50, "warmup": 2 if quick else 10, "max_seconds": 2.0 if quick else 30.0,
            "throughput_seconds": 0.05 if quick else 3.0, "max_iters": 3 if quick else 200}


def run_engine(kind: str, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One engine in a subprocess of this script (`--child SPEC`); its result dict, or raises RuntimeError."""
    spec_path = Path(spec["out"]) / f"{kind}.spec.json"
    result_path = Path(spec["out"]) / f"{kind}.result.json"
    spec_path.write_text(json.dumps({**spec, "kind": kind, "result": str(result_path)}))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)], env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not result_path.is_file():
        tail = (proc.stderr or proc.stdout)[-1500:]
        raise RuntimeError(f"exit code {proc.returncode}: {tail}")
    return json.loads(result_path.read_text())


def quality(kind: str, out: Path, gate_ref: np.ndarray, gate_x: np.ndarray, gate_t: np.ndarray, res: int,
            val: tuple[np.ndarray, np.ndarray] | None, val_ref: np.ndarray | None) -> dict[str, float]:
    """Gate PSNR (parity.check_parity on the saved outputs) and val SSIM of one engine's saved outputs."""
    from cheartflow_sdk.export import check_parity
    from cheartflow_sdk.research.metrics.image import psnr, ssim

    got = np.load(out / f"{kind}.gate.npy")
    report = check_parity(lambda x, t: got, lambda x, t: gate_ref, res)
    q = {"gate_psnr_db": min(report.psnr_db, 999.0), "gate_max_abs_error": report.max_abs_error}
    if val is not None and (out / f"{kind}.val.npy").is_file():
        images = np.load(out / f"{kind}.val.npy").astype(np.float32) / 255
        q["val_ssim_1step"] = float(np.mean(ssim(images, val[1])))
        q["val_ssim_fp32_torch_1step"] = float(np.mean(ssim(val_ref, val[1])))
        q["val_ssim_delta_vs_fp32"] = q["val_ssim_1step"] - q["val_ssim_fp32_torch_1step"]
        q["val_ssim_abs_delta_vs_fp32"] = abs(q["val_ssim_delta_vs_fp32"])
        q["val_image_psnr_vs_fp32_db"] = float(min(np.mean(np.minimum(psnr(images, val_ref), 999.0)), 999.0))
        q["val_slices"] = len(images)
    return q


def speed_ratios(c: dict[str, Any], ref: dict[str, Any] | None, flops: float, peaks: dict[str, float],
                 vs: str) -> dict[str, float]:
    """One engine's measurements as ratios: p99/p50, speedups and throughput ratios to `ref` (keys named
    `speedup{vs}_...`, `throughput_ratio{vs}_...`), achieved GFLOP/s and the fraction of each matmul peak."""
    d: dict[str, float] = {}
    lat1 = c["latency_b1"]["1step"]
    d["latency_p99_over_p50_1step_b1"] = lat1["p99_ms"] / lat1["p50_ms"]
    if ref is not None:
        d[f"speedup{vs}_1step_b1"] = ref["latency_b1"]["1step"]["p50_ms"] / lat1["p50_ms"]
        d[f"speedup{vs}_2step_b1"] = ref["latency_b1"]["2step"]["p50_ms"] / c["latency_b1"]["2step"]["p50_ms"]
        for b, ips in c["throughput_ips"]["1step"].items():
            base = ref["throughput_ips"]["1step"].get(b)
            if base:
                d[f"throughput_ratio{vs}_1step_b{b}"] = ips / base
    for b, ips in c["throughput_ips"]["1step"].items():
        d[f"achieved_gflops_1step_b{b}"] = ips * flops / 1e9
        for peak, gflops in peaks.items():
            d[f"fraction_of_{peak}_peak_1step_b{b}"] = ips * flops / 1e9 / gflops
    return d


def derive(report: dict[str, Any]) -> None:
    """Ratios to ONNX Runtime fp32 and to the matmul peaks, quality verdicts, the best engine and the order."""
    configs, roof = report["configs"], report["roofline"]
    ref = configs.get(REF)
    peaks = {p: roof[f"peak_gflops_{p}"] for p in ("fp32", "bf16") if roof.get(f"peak_gflops_{p}")}
    for name, c in configs.items():
        d = speed_ratios(c, ref, report["flops_per_image"], peaks, "_vs_ort_fp32")
        q = c.get("quality", {})
        d["passes_quality"] = bool(q.get("gate_psnr_db", 0) >= QUALITY_MIN_PSNR_DB and
                                   q.get("val_ssim_abs_delta_vs_fp32", 0.0) <= QUALITY_MAX_SSIM_DELTA)
        c["derived"] = d
    ok = [n for n, c in configs.items() if c["derived"]["passes_quality"]]
    key_b = "16" if all("16" in configs[n]["throughput_ips"]["1step"] for n in ok) else None

    def speed(n: str) -> float:
        thr = configs[n]["throughput_ips"]["1step"]
        return thr[key_b] if key_b else max(thr.values())

    ranked = sorted(ok, key=speed, reverse=True)
    report["ranking_by_throughput"] = ranked
    report["best"] = ranked[0] if ranked else None
    from cheartflow_sdk.backends.registry import CPU_ORDER

    measured = [REGISTRY_KIND[n] for n in ranked if n in REGISTRY_KIND]
    report["registry_order_measured"] = measured + [k for k in CPU_ORDER if k not in measured]
    best = report["best"]
    if best:
        c = configs[best]
        values = {**c["derived"], **c.get("quality", {}), "rss_after_load_mb": c["rss_after_load_mb"]}
        report["targets"] = {k: {"target": f"{op} {v}", "value": values.get(k),
                                 "met": None if values.get(k) is None else (values[k] >= v if op == ">=" else values[k] <= v)}
                             for k, (op, v) in TARGETS.items()}
        if ref is not None:
            report["targets"]["rss_after_load_mb@onnxruntime-fp32"] = {
                "target": "<= 300.0", "value": ref["rss_after_load_mb"], "met": ref["rss_after_load_mb"] <= 300.0}


def flatten(report: dict[str, Any]) -> dict[str, Any]:
    """The flat `metrics` object of the results file: `<metric>@<engine>` plus run-wide figures."""
    m: dict[str, Any] = {"flops_per_image": report["flops_per_image"], "resolution": report["resolution"],
                         "engines_measured": len(report["configs"]), "best_engine": report.get("best") or ""}
    for k, v in report["roofline"].items():
        m[k] = v
    for name, c in report["configs"].items():
        for k, lat in c["latency_b1"].items():
            m[f"latency_p50_ms_{k}_b1@{name}"] = lat["p50_ms"]
            m[f"latency_p99_ms_{k}_b1@{name}"] = lat["p99_ms"]
        for b, ips in c["throughput_ips"]["1step"].items():
            m[f"throughput_ips_1step_b{b}@{name}"] = ips
        for k in ("rss_after_load_mb", "rss_after_batches_mb", "peak_rss_mb", "load_s"):
            m[f"{k}@{name}"] = c[k]
        for k, v in {**c.get("quality", {}), **c["derived"]}.items():
            m[f"{k}@{name}"] = v
    for k, t in report.get("targets", {}).items():
        if t["met"] is not None:
            m[f"target_met_{k}"] = t["met"]
    return m


def _fmt(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(doc: dict[str, Any], report: dict[str, Any], png_name: str) -> str:
    roof, configs = report["roofline"], report["configs"]
    host = doc["host"]
    lines = [f"# CPU engines side by side ({'QUICK SMOKE RUN, numbers meaningless' if doc['quick'] else 'full run'})", "",
             f"- CPU: {host['cpu']}, {host['usable_cores']} usable cores, native bf16: {host['native_bf16']}, "
             f"ISA class {host['isa_class']}; load average at start {host['loadavg_start']}",
             f"- date: {doc['date']}; command: `{doc['command']}`",
             f"- versions: {', '.join(f'{k} {v}' for k, v in doc['versions'].items())}",
             f"- model: {doc['model']} ({report['resolution']}x{report['resolution']}, "
             f"{report['flops_per_image'] / 1e9:.3f} GFLOP per image per encoder call)",
             f"- matmul peaks (this run): fp32 {_fmt(roof.get('peak_gflops_fp32'))} GFLOP/s ({roof.get('peak_fp32_kind', '')}), "
             f"bf16 {_fmt(roof.get('peak_gflops_bf16'))} GFLOP/s (torch.matmul)",
             f"- calibration of the int8 engines: {doc['calibration']}; quality on {doc['val'] or 'no --val data'}",
             "", f"![throughput and latency]({png_name})", "",
             "| engine | backend | 1-step b1 p50 / p99 ms | 2-step b1 p50 / p99 ms | images/s 1-step b1 / b8 / b16 / b64 "
             "| x ORT fp32 b1 / b16 | % fp32 / bf16 peak b16 | RSS load / batches / peak MB | gate PSNR dB | val SSIM (delta vs fp32) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in configs.items():
        lat, thr, d, q = c["latency_b1"], c["throughput_ips"]["1step"], c["derived"], c.get("quality", {})
        ips = " / ".join(_fmt(thr.get(str(b))) for b in sorted(int(k) for k in thr))
        ssim = (f"{q['val_ssim_1step']:.4f} ({q['val_ssim_delta_vs_fp32']:+.4f})" if "val_ssim_1step" in q else "-")
        lines.append(
            f"| {name}{' **best**' if name == report.get('best') else ''} | {c['backend']} "
            f"| {lat['1step']['p50_ms']:.2f} / {lat['1step']['p99_ms']:.2f} | {lat['2step']['p50_ms']:.2f} / {lat['2step']['p99_ms']:.2f} "
            f"| {ips} | {_fmt(d.get('speedup_vs_ort_fp32_1step_b1'), '.2f')} / {_fmt(d.get('throughput_ratio_vs_ort_fp32_1step_b16'), '.2f')} "
            f"| {_fmt(100 * d['fraction_of_fp32_peak_1step_b16'] if 'fraction_of_fp32_peak_1step_b16' in d else None, '.0f')} / "
            f"{_fmt(100 * d['fraction_of_bf16_peak_1step_b16'] if 'fraction_of_bf16_peak_1step_b16' in d else None, '.0f')} "
            f"| {c['rss_after_load_mb']:.0f} / {c['rss_after_batches_mb']:.0f} / {c['peak_rss_mb']:.0f} | {_fmt(q.get('gate_psnr_db'))} | {ssim} |")
    if report.get("targets"):
        lines += ["", f"## Issue 16 targets for the best engine ({report['best']})", "", "| target | value | met |",
                  "| --- | --- | --- |"]
        lines += [f"| {k} {t['target']} | {_fmt(t['value'], '.3f')} | {t['met']} |" for k, t in report["targets"].items()]
    lines += ["", "## Measured registry order", "",
              "Engines passing the quality bar (gate PSNR >= 35 dB, |val SSIM - fp32| <= 0.01), fastest first at "
              "batch 16, then the rest of the default order: paste into `cheartflow_sdk/backends/registry.py` "
              "`CPU_ORDER` (or set `CHEARTFLOW_CPU_ORDER`).", "",
              f"`CPU_ORDER = {tuple(report['registry_order_measured'])!r}`"]
    if report["skipped"]:
        lines += ["", "## Not measured", "", "| engine | reason |", "| --- | --- |"]
        lines += [f"| {n} | {r.replace('|', '/')[:400]} |" for n, r in report["skipped"].items()]
    lines += ["", "Latency: one batch-1 request at a time through Pipeline.synthesize (uint8 in, uint8 out); throughput: "
              "Pipeline.stream of equal batches (1 step); each engine in its own process (RSS is that process's, "
              "with the Python runtime and the engine's library; load: after loading and batch-1 warm-up, batches: after "
              "the throughput runs, peak: the high-water mark, batch-64 buffers and the val synthesis included)."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model folder (config.json + model.safetensors); default: the bundled edges model")
    p.add_argument("--calibration", help="int8 calibration data: a packed .npz (e.g. packed/train-128.npz) or sketch files "
                                         "(default: phantom sketches, not meaningful for a real model)")
    p.add_argument("--calibration-count", type=int, default=64)
    p.add_argument("--val", help="packed val .npz (e.g. packed/val-128.npz) for the one-step SSIM vs fp32")
    p.add_argument("--val-count", type=int, help="val slices used (default: all; 4 with --quick)")
    p.add_argument("--engines", default="", help=f"comma-separated subset of {','.join(ENGINES + OPT_IN_ENGINES)}")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few requests, no torch-compiled unless asked")
    p.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR)
    p.add_argument("--work", type=Path, help="keep the exported engines here (default: a temporary folder)")
    p.add_argument("--requests", type=int, help="timed batch-1 requests per latency point (default 300; 10 quick)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if args.child:
        spec = json.loads(Path(args.child).read_text())
        Path(spec["result"]).write_text(json.dumps(run_child(spec)))
        return 0
    import torch

    from cheartflow_sdk.cpu_features import has_native_bf16, isa_class, usable_cores
    from cheartflow_sdk.export import parity_inputs
    from cheartflow_sdk.pipeline import Pipeline, default_model_dir
    from cheartflow_sdk.backends.torch_backend import TorchEncoder

    q = args.quick
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()] or [
        e for e in ENGINES if not (q and e == "torch-compiled-fp32")]
    unknown = [e for e in wanted if e not in ENGINES + OPT_IN_ENGINES]
    if unknown:
        raise SystemExit(f"--engines: unknown {unknown}; expected some of {ENGINES + OPT_IN_ENGINES}")
    model_dir = args.model or default_model_dir("edges")
    skipped: dict[str, str] = {}
    if q and not args.engines:
        skipped["torch-compiled-fp32"] = "skipped with --quick (AOTInductor compilation takes minutes)"
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cf-cpu-engines-") as tmp:
        work = args.work or Path(tmp) / "model"
        out = Path(tmp) / "outputs"
        out.mkdir()
        facts = prepare_engines(model_dir, work, wanted, args, skipped)
        reference = TorchEncoder(work, device="cpu")
        cfg = reference.config
        res, sketch_kind = cfg.resolution, cfg.sketch_kind
        gate_x, gate_t = parity_inputs(res)
        np.savez(out / "gate_inputs.npz", x=gate_x, t=gate_t)
        gate_ref = reference(gate_x, gate_t)
        val = val_data(args.val, cfg, args.val_count or (4 if q else 10**9))
        val_ref = None
        if val is not None:
            np.save(out / "val_sketches.npy", val[0])
            val_ref = Pipeline(reference, work).synthesize(val[0], steps=1, seed=0, batch_size=16, dtype=np.uint8)
            val_ref = val_ref.astype(np.float32) / 255
        roof: dict[str, Any] = {}
        n = 256 if q else 2048
        peak32 = cpu_fp32_matmul_peak_gflops(n)
        peak16 = cpu_bf16_matmul_peak_gflops(n)
        report: dict[str, Any] = {"resolution": res, "flops_per_image": flops_per_image(reference.module, res),
                                  "configs": {}, "skipped": skipped, "roofline": roof}
        del reference
        spec = {**measurement_spec(q, args.requests), "work": str(work), "out": str(out),
                "gate_inputs": str(out / "gate_inputs.npz"),
                "val_sketches": str(out / "val_sketches.npy") if val is not None else None}
        for kind in wanted:
            if kind in skipped:
                continue
            log.info("measuring %s", kind)
            try:
                c = run_engine(kind, spec, 300 if q else 1800)
            except Exception as exc:  # noqa: BLE001 - one engine failing does not stop the others
                log.warning("%s failed: %s", kind, exc)
                skipped[kind] = f"failed: {type(exc).__name__}: {exc}"
                continue
            c.update(facts.get(kind, {}))
            c["quality"] = quality(kind, out, gate_ref, gate_x, gate_t, res, val, val_ref)
            report["configs"][kind] = c
        end32 = cpu_fp32_matmul_peak_gflops(n)
        roof["peak_gflops_fp32"], roof["peak_fp32_kind"] = max(peak32, end32)
        roof["peak_gflops_bf16"] = None if peak16 is None else max(peak16, cpu_bf16_matmul_peak_gflops(n) or 0.0)
        roof["peak_note"] = "best of the start and the end of the run, all usable cores"
        derive(report)
    host = {"cpu": results.cpu_name(), "usable_cores": usable_cores(),
            "native_bf16": has_native_bf16(), "isa_class": isa_class(), "loadavg_start": [round(v, 2) for v in load_start],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()], "torch_threads": torch.get_num_threads()}
    name = "cpu-engines-quick" if q else f"cpu-engines-{sketch_kind}-{results.slug(host['cpu'])}"
    extra = {"quick": q, "model": str(model_dir), "calibration": args.calibration or "phantom sketches",
             "val": args.val, "host": host, "configs": report["configs"], "skipped": skipped,
             "best": report.get("best"), "targets": report.get("targets", {}),
             "registry_order_measured": report["registry_order_measured"],
             "ranking_by_throughput": report["ranking_by_throughput"], "elapsed_s": round(time.perf_counter() - t_start, 1)}
    title = f"cheartflow-sdk CPU engines on {host['cpu']}, {host['usable_cores']} cores"
    json_path = results.write_report(name, flatten(report), extra, args.results_dir,
                                     lambda doc, png: plot(report, f"{title} ({doc['date']})", png),
                                     lambda doc, png_name: markdown(doc, report, png_name))
    print(f"wrote {json_path}, {name}.md and {name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
