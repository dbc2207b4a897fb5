"""`import cheartflow_sdk` and ONNX Runtime inference must not import torch."""

import subprocess
import sys


def _run(code: str, cwd) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd, timeout=120)


def test_import_does_not_import_torch(tmp_path):
    _run("import sys, cheartflow_sdk as cf; cf.__version__; assert 'torch' not in sys.modules, 'torch imported'", tmp_path)


def test_onnx_inference_does_not_import_torch(onnx_model, tmp_path):
    _run(
        "import sys, numpy as np, cheartflow_sdk as cf\n"
        f"pipe = cf.load_pipeline({str(onnx_model)!r}, device='cpu')\n"
        "out = pipe.synthesize(np.zeros((2, 32, 32), np.uint8), steps=2)\n"
        "assert out.shape == (2, 1, 32, 32)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n",
        tmp_path,
    )


def test_missing_extra_names_the_extra(monkeypatch):
    from cheartflow_sdk._optional import require
    from cheartflow_sdk.errors import MissingDependencyError
    import pytest

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    with pytest.raises(MissingDependencyError, match=r"cheartflow-sdk\[tensorrt\]"):
        require("tensorrt")
