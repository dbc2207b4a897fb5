"""benchmarks/bench_kernels.py runs (CPU mode, --quick) and writes a well-formed results file.

Only the plumbing is checked: speed targets belong to the benchmark results, not to tests."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cheartflow_sdk import kernels

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_kernels.py"

CPU_METRICS = [
    f"cpu_{name}_{unit}_{threads}"
    for name in ("renoise_fp32", "renoise_fp16", "normal_fill", "preprocess_u8_f32", "postprocess_f32_u8")
    for unit in ("gbs", "melems")
    for threads in ("1thread", "allthreads")
] + ["cpu_threads_all", "cpu_numpy_reference_renoise_fp32_melems", "cpu_renoise_speedup_vs_numpy_reference",
     "cpu_noise_bit_identical_native_reference"]


@pytest.mark.skipif(not kernels.native_available(), reason="the CPU benchmark measures the native module")
def test_bench_kernels_quick_cpu_run_writes_results(tmp_path):
    env = dict(os.environ)  # the subprocess imports the same cheartflow_sdk as this test session
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--results-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    path = tmp_path / "kernels-cpu.json"
    assert path.is_file(), res.stdout
    doc = json.loads(path.read_text())
    for key in ("device", "date", "versions", "command", "metrics"):
        assert key in doc, key
    assert isinstance(doc["versions"], dict) and "python" in doc["versions"] and "numpy" in doc["versions"]
    assert "bench_kernels.py" in doc["command"] and "--quick" in doc["command"]
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    assert all(not isinstance(v, (dict, list)) for v in metrics.values()), "metrics must be flat"
    assert all(k.startswith("cpu_") for k in metrics)
    for key in CPU_METRICS:
        assert key in metrics, key
        assert metrics[key] > 0, (key, metrics[key])
    assert metrics["cpu_noise_bit_identical_native_reference"] is True
    if importlib.util.find_spec("torch") is not None:
        assert metrics["cpu_torch_ops_renoise_fp32_melems"] > 0 and metrics["cpu_renoise_speedup_vs_torch_ops"] > 0
    assert "| metric | value |" in res.stdout and "cpu_renoise_fp32_gbs_allthreads" in res.stdout
    assert "QUICK" in doc["notes"]
