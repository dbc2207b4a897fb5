"""Results files of the benchmarks: JSON with device, date, versions, command and a flat `metrics` object,
and the markdown and PNG reports beside it."""

from __future__ import annotations

import datetime
import json
import platform
import re
import shlex
import sys
from collections.abc import Callable
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


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def slug(text: str, empty: str = "device") -> str:
    """`text` as a file-name part: lower case, runs of other characters as one '-' (`empty` if nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or empty


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


def write_report(name: str, metrics: dict[str, Any], extra: dict[str, Any], results_dir: Path,
                 plot: Callable[[dict[str, Any], Path], None], markdown: Callable[[dict[str, Any], str], str]) -> Path:
    """`name`.json (write_results), then `name`.png (`plot(doc, path)`) and `name`.md (`markdown(doc, png name)`),
    each written atomically; `doc` is the JSON document as written. Returns the JSON path."""
    from cheartflow_sdk.atomic import atomic_write_text

    json_path = write_results(name, metrics, extra, results_dir=results_dir)
    doc = json.loads(json_path.read_text())
    png_path = results_dir / f"{name}.png"
    plot(doc, png_path)
    atomic_write_text(results_dir / f"{name}.md", markdown(doc, png_path.name))
    return json_path
