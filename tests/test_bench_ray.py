"""Smoke run of benchmarks/bench_ray.py on the tiny model: local and Ray outputs equal, results written
(no timings are asserted: the numbers of a smoke run mean nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RES

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ray.py"


def test_ray_bench_compares_with_local_and_writes_results(onnx_model, tmp_path):
    pytest.importorskip("ray.data")
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", str(onnx_model.parent), "--count", "4", "--actors", "1",
                           "--files-per-batch", "2", "--resolution", str(RES), "--results-dir", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [json_path] = out.glob("ray-*.json")
    doc = json.loads(json_path.read_text())
    metrics = doc["metrics"]
    assert doc["actor_counts"] == [1] and metrics["count"] == 4 and "bench_ray.py" in doc["command"]
    assert metrics["ray_1_equal_to_local"] is True
    assert metrics["local_images_per_s"] > 0 and metrics["ray_1_images_per_s"] > 0
    assert json_path.with_suffix(".md").is_file() and json_path.with_suffix(".png").stat().st_size > 0
