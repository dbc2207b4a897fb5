"""Smoke run of benchmarks/bench_cpu_engines.py on the tiny model with --quick: the structure of its JSON,
markdown and PNG (no timings are asserted: the numbers of a smoke run mean nothing)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_cpu_engines.py"


@pytest.fixture()
def val_npz(tmp_path):
    from cheartflow_sdk.data import SliceSet, save_slices
    from cheartflow_sdk.data.phantom import make_phantom

    from conftest import RES

    images, labels = make_phantom(6, size=RES, seed=11)
    n = len(images)
    return save_slices(tmp_path / "val.npz", SliceSet(images=images, labels=labels.astype(np.uint8), patients=["p"] * n,
                                                      frames=["ED"] * n, slice_index=list(range(n))))


def test_quick_run_writes_side_by_side_results(trained_model_dir, val_npz, tmp_path):
    pytest.importorskip("matplotlib")
    engines = ["onnxruntime-fp32", "torch-eager-bf16", "onnxruntime-int8"]
    if importlib.util.find_spec("openvino") is not None:
        engines += ["openvino-fp32", "openvino-int8-fused"]  # an opt-in GroupNorm form beside the default one
    out = tmp_path / "results"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", str(trained_model_dir), "--quick", "--engines",
                           ",".join(engines), "--val", str(val_npz), "--calibration", str(val_npz),
                           "--calibration-count", "4", "--results-dir", str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "cpu-engines-quick.json").read_text())
    for key in ("device", "date", "versions", "command", "metrics", "host", "configs", "skipped", "registry_order_measured"):
        assert key in doc, key
    assert "bench_cpu_engines.py" in doc["command"] and "--quick" in doc["command"]
    assert doc["quick"] is True and doc["calibration"] == str(val_npz)
    measured = set(doc["configs"]) | set(doc["skipped"])
    assert measured == set(engines), (doc["configs"].keys(), doc["skipped"])
    assert "onnxruntime-fp32" in doc["configs"], doc["skipped"]
    metrics = doc["metrics"]
    assert all(not isinstance(v, (dict, list, tuple)) for v in metrics.values())
    assert metrics["peak_gflops_fp32"] > 0 and metrics["flops_per_image"] > 0
    from cheartflow_sdk.cpu_features import has_native_bf16

    bf16_peak = metrics["peak_gflops_bf16"]  # no bf16 peak where torch only emulates bf16
    assert bf16_peak > 0 if has_native_bf16() else bf16_peak is None
    peaks = ("fp32", "bf16") if has_native_bf16() else ("fp32",)
    for name, c in doc["configs"].items():
        for key in (f"latency_p50_ms_1step_b1@{name}", f"latency_p99_ms_2step_b1@{name}", f"throughput_ips_1step_b4@{name}",
                    f"rss_after_load_mb@{name}", f"rss_after_batches_mb@{name}", f"peak_rss_mb@{name}",
                    f"gate_psnr_db@{name}", f"val_ssim_1step@{name}", f"speedup_vs_ort_fp32_1step_b1@{name}",
                    *(f"fraction_of_{p}_peak_1step_b4@{name}" for p in peaks)):
            assert isinstance(metrics[key], (int, float)) and metrics[key] > 0, key
        assert c["peak_rss_mb"] >= c["rss_after_batches_mb"] > 0 and c["peak_rss_mb"] >= c["rss_after_load_mb"] > 0
        assert c["quality"]["val_slices"] == 4
        assert isinstance(metrics[f"passes_quality@{name}"], bool)
    ref = doc["configs"]["onnxruntime-fp32"]
    assert ref["quality"]["gate_psnr_db"] > 60  # fp32 ONNX Runtime is the fp32 encoder
    assert metrics["speedup_vs_ort_fp32_1step_b1@onnxruntime-fp32"] == pytest.approx(1.0)
    assert ref["backend"] == "onnxruntime-cpu"
    if "onnxruntime-int8" in doc["configs"]:
        assert doc["configs"]["onnxruntime-int8"]["backend"] == "onnxruntime-cpu-int8"
    if "openvino-int8-fused" in doc["configs"]:
        assert doc["configs"]["openvino-int8-fused"]["backend"] == "openvino-cpu-int8"
    from cheartflow_sdk.backends.registry import CPU_ORDER

    assert sorted(doc["registry_order_measured"]) == sorted(CPU_ORDER)
    md = (out / "cpu-engines-quick.md").read_text()
    assert "QUICK SMOKE RUN" in md and "| engine | backend |" in md and "CPU_ORDER = (" in md
    assert "cpu-engines-quick.png" in md and "--quick" in md
    png = (out / "cpu-engines-quick.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not list(out.glob(".*tmp*"))
