"""Smoke run of benchmarks/bench_architectures.py: both presets built, exported and measured in one run, results
written (no timings are asserted: the numbers of a smoke run mean nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_architectures.py"


def test_architecture_bench_measures_every_preset_and_writes_results(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--presets", "small,small-patch2",
                           "--engines", "onnxruntime-fp32", "--results-dir", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "architectures-quick.json").read_text())
    presets, metrics = doc["presets"], doc["metrics"]
    assert list(presets) == ["small", "small-patch2"] and not any(p["skipped"] for p in presets.values())
    assert presets["small-patch2"]["parameters"] > 3 * presets["small"]["parameters"]
    assert metrics["speedup_1step_b1@small/onnxruntime-fp32"] == 1.0  # the reference of the ratios
    assert metrics["throughput_ips_1step_b4@small-patch2/onnxruntime-fp32"] > 0
    assert (out / "architectures-quick.md").is_file() and (out / "architectures-quick.png").stat().st_size > 0
