"""Smoke run of benchmarks/bench_pipeline.py with the tiny model and --quick: outputs and their format (no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_pipeline.py"


def test_quick_cpu_run_writes_json_markdown_and_png(trained_model_dir, onnx_model, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", str(trained_model_dir), "--quick",
                           "--results-dir", str(out), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "pipeline-cpu.json").read_text())
    for key in ("device", "date", "versions", "command", "metrics"):
        assert key in doc, key
    assert "bench_pipeline.py" in doc["command"] and "--quick" in doc["command"]
    metrics = doc["metrics"]
    assert all(not isinstance(v, (dict, list, tuple)) for v in metrics.values())
    for key in ("latency_p50_ms_1step_b1", "latency_p99_ms_1step_b1", "latency_p50_ms_2step_b1",
                "latency_p99_ms_2step_b1", "flops_per_image_per_step", "stream_b1_saturated_drift_ratio",
                "stream_b1_paced_latency_p50_ms", "cold_start_load_s", "cold_start_warmup_s",
                "latency_p50_ms_1step_b1@torch-eager-fp32", "latency_p50_ms_1step_b1@onnxruntime-cpu",
                "throughput_ips_1step_b4@onnxruntime-cpu", "throughput_ratio_vs_eager_fp32_1step_b4@onnxruntime-cpu"):
        assert key in metrics, key
        assert isinstance(metrics[key], (int, float)) and metrics[key] > 0, key
    assert doc["quick"] is True and set(doc["configs"]) == {"torch-eager-fp32", "onnxruntime-cpu"}
    assert "sdk-graphs-fp16" in doc["skipped"]  # GPU configurations are listed as not measured, with the reason
    md = (out / "pipeline-cpu.md").read_text()
    assert "| config |" in md and "pipeline-cpu.png" in md and "onnxruntime-cpu" in md and "--quick" in md
    png = (out / "pipeline-cpu.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not list(out.glob(".*tmp*"))  # atomic writes left no temporary files
