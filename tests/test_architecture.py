"""ARCHITECTURE.md's seam, kept true: inference never loads training or research code."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import cheartflow_sdk

PACKAGE = Path(cheartflow_sdk.__file__).parent
OFF_LIMITS = ("cheartflow_sdk.training", "cheartflow_sdk.research")
# Code that may use training and research: the CLI dispatches to them (lazily), they use each other.
ALLOWED_IMPORTERS = ("cli", "training", "research")


def _off_limits(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in OFF_LIMITS)


def test_synthesize_on_torch_and_onnxruntime_loads_no_training_or_research_module(tmp_path):
    code = (
        "import json, sys, numpy as np, cheartflow_sdk as cf\n"
        "opened = {}\n"
        "for backend in ('torch', 'onnxruntime'):\n"
        "    pipe = cf.load_pipeline(backend=backend)\n"
        "    r = pipe.config.resolution\n"
        "    yy, xx = np.mgrid[:r, :r]\n"
        "    ring = (np.abs(np.hypot(yy - r / 2, xx - r / 2) - r / 4) < 1.5).astype(np.uint8) * 255\n"
        "    out = pipe.synthesize(ring[None], steps=2, seed=0)\n"
        "    assert out.shape == (1, 1, r, r) and np.isfinite(out).all() and 0 <= out.min() <= out.max() <= 1\n"
        "    opened[backend] = pipe.backend\n"
        "print(json.dumps({'opened': opened, 'modules': sorted(m for m in sys.modules if m.startswith('cheartflow_sdk'))}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["opened"]["torch"] == "torch"
    assert report["opened"]["onnxruntime"].startswith("onnxruntime")  # onnxruntime-cpu / -cuda
    modules = report["modules"]
    assert {"cheartflow_sdk.backends.torch_backend", "cheartflow_sdk.backends.onnxruntime_backend"} <= set(modules)
    assert [m for m in modules if _off_limits(m)] == []


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules a source file imports, relative imports resolved, lazy ones included."""
    package = ["cheartflow_sdk", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import training`
    return names


def test_no_runtime_source_imports_training_or_research():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ALLOWED_IMPORTERS:
            continue
        bad = sorted(m for m in _imported_modules(path) if _off_limits(m))
        if bad:
            offenders[str(rel)] = bad
    assert offenders == {}
