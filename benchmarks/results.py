"""Results files of the benchmarks: JSON with device, date, versions, command and a flat `metrics` object."""

from __future__ import annotations

import datetime
import json
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_PACKAGES = ("cheartflow-sdk", "numpy", "torch", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorrt", "triton", "cupy-cuda13x",
             "openvino", "nncf", "ray")


def device_name() -> str:
    """The GPU's name when torch sees one, else the CPU's."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def versions() -> dict[str, str]:
    """Versions of Python, the packages that shape the numbers, and the CUDA runtime when present."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.version.cuda:
            out["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return out


def write_results(name: str, metrics: dict[str, Any], extra: dict[str, Any] | None = None,
                  results_dir: Path = RESULTS_DIR) -> Path:
    """Write `results_dir/name.json`; `metrics` must be flat (numbers, strings, booleans)."""
    nested = [k for k, v in metrics.items() if isinstance(v, (dict, list, tuple))]
    if nested:
        raise ValueError(f"metrics must be a flat object; nested values under {nested}")
    doc = {
        "device": device_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "metrics": metrics,
        **(extra or {}),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path
