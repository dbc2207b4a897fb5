"""GPU engines: the compiled PyTorch engine (AOTInductor, fp16, CUDA graphs), TensorRT (unverified in the build
environment: skipped without `tensorrt`), ONNX Runtime CUDA. Every test here skips cleanly without CUDA.

On a GPU machine with the repository checked out (not installed):
    PYTHONPATH=$PWD python -m pytest -q tests/test_engines_gpu.py
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU visible to torch", allow_module_level=True)

import cheartflow_sdk as cf  # noqa: E402
from cheartflow_sdk import contract  # noqa: E402
from cheartflow_sdk.errors import ModelMismatchError  # noqa: E402

from conftest import RES  # noqa: E402


@pytest.fixture(scope="module")
def gpu_model_dir(trained_model_dir, tmp_path_factory):
    """The tiny model with a re-initialized output conv (so fp16 rounding shows), copied without engines."""
    from cheartflow_sdk.training.checkpoint import load_encoder, save_model

    enc = load_encoder(trained_model_dir)
    torch.manual_seed(0)
    enc.net.out_conv.reset_parameters()
    out = tmp_path_factory.mktemp("gpu_model")
    save_model(enc, out)
    return out


@pytest.fixture(scope="module")
def compiled(gpu_model_dir):
    from cheartflow_sdk.export import export_engine

    path, report = export_engine(gpu_model_dir, "torch-compiled")
    return path, report


def _inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (batch, 1, RES, RES)).astype(np.float32), rng.uniform(0, 1, batch).astype(np.float32))


# ------------------------------------------------------------------ compiled PyTorch engine


def test_compiled_passes_the_gate_with_metadata(gpu_model_dir, compiled):
    path, report = compiled
    assert path == gpu_model_dir / contract.COMPILED_FILENAME
    assert report.finite and report.psnr_db >= 40
    meta = contract.read_sidecar(path)
    assert meta[contract.META_PRECISION] == "fp16" and meta[contract.META_DEVICE] == "cuda"
    assert meta[contract.META_GPU_NAME] == torch.cuda.get_device_name()
    assert meta[contract.META_COMPUTE_CAPABILITY] == "{}.{}".format(*torch.cuda.get_device_capability())
    assert meta[contract.META_TORCH_VERSION] == torch.__version__ and meta[contract.META_CUDA_VERSION] == torch.version.cuda
    from cheartflow_sdk.export import verify_engine

    assert verify_engine(path).passed


def test_compiled_graphs_match_direct_calls(compiled):
    from cheartflow_sdk.backends.compiled_backend import CompiledEncoder

    enc = CompiledEncoder(compiled[0])
    direct = CompiledEncoder(compiled[0], cuda_graphs=False)
    assert enc.name == "torch-compiled" and enc.cuda_graphs and enc.buckets == (1, 8, 64, 256)
    for batch in (1, 8, 5, 64):  # buckets replay graphs; 5 runs the package directly
        x, t = _inputs(batch, seed=batch)
        np.testing.assert_allclose(enc(x, t), direct(x, t), atol=2e-3)
    assert enc.captures == 3 and enc.graph_error is None
    x, t = _inputs(8, seed=9)
    first = enc(x, t)
    np.testing.assert_array_equal(enc(x, t), first)  # replay is deterministic
    enc.allocate(8, force=True)  # new buffers: the bucket's graph must be re-captured
    np.testing.assert_allclose(enc(x, t), first, atol=1e-6)
    assert enc.captures == 4


def test_compiled_takes_cuda_tensors_and_streams(compiled):
    from cheartflow_sdk.backends.compiled_backend import CompiledEncoder

    enc = CompiledEncoder(compiled[0])
    x, t = _inputs(8)
    want = enc(x, t)
    xd, td = torch.from_numpy(x).cuda(), torch.from_numpy(t).cuda()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    out = enc(xd, td, stream=stream)
    stream.synchronize()
    assert out.is_cuda and out.dtype == torch.float32
    np.testing.assert_allclose(out.cpu().numpy(), want, atol=1e-6)
    out2 = enc(xd, td)
    assert out2.data_ptr() != out.data_ptr()  # a new tensor each call, never the static buffer
    fn = enc.torch_callable()
    np.testing.assert_allclose(fn(xd, td).cpu().numpy(), want, atol=2e-3)


def test_compiled_pipeline_and_auto(gpu_model_dir, compiled):
    pipe = cf.load_pipeline(gpu_model_dir)  # auto on CUDA: the compiled engine (no TensorRT engine there)
    assert pipe.backend == "torch-compiled"
    ref = cf.load_pipeline(gpu_model_dir, backend="torch")
    sketches = (np.random.default_rng(0).uniform(0, 1, (8, RES, RES)) > 0.8).astype(np.uint8) * 255
    for steps in (1, 2):
        a = pipe.synthesize(sketches, steps=steps, seed=3)
        b = ref.synthesize(sketches, steps=steps, seed=3)
        assert np.isfinite(a).all() and np.abs(a - b).mean() < 0.01 and np.abs(a - b).max() < 0.1


def test_compiled_loads_without_training_code(compiled, tmp_path):
    code = (
        "import sys, numpy as np, cheartflow_sdk as cf\n"
        f"pipe = cf.load_pipeline({str(compiled[0])!r})\n"
        "assert pipe.backend == 'torch-compiled'\n"
        "assert pipe.synthesize(np.zeros((2, 32, 32), np.uint8)).shape == (2, 1, 32, 32)\n"
        "bad = [m for m in sys.modules if m.startswith(('cheartflow_sdk.training', 'cheartflow_sdk.models', 'cheartflow_sdk.export'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=300)


def test_compiled_mismatch_errors(compiled, tmp_path):
    copy = tmp_path / "model.pt2"
    shutil.copy(compiled[0], copy)
    meta = contract.read_sidecar(compiled[0])
    contract.sidecar_path(copy).write_text(json.dumps({**meta, contract.META_COMPUTE_CAPABILITY: "1.0"}))
    with pytest.raises(ModelMismatchError, match=r"compute capability 1\.0.*running: .*compute capability"):
        cf.load_pipeline(copy)
    contract.sidecar_path(copy).write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError, match="compiled for 'cuda' but device='cpu'"):
        cf.load_pipeline(copy, device="cpu")


# ------------------------------------------------------------------ ONNX Runtime CUDA


def test_onnxruntime_cuda_fp16(gpu_model_dir):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA execution provider here")
    from cheartflow_sdk.backends.onnxruntime_backend import OnnxRuntimeEncoder
    from cheartflow_sdk.backends.torch_backend import TorchEncoder
    from cheartflow_sdk.export import check_parity, export_engine

    path, _ = export_engine(gpu_model_dir, "onnx-fp16")
    try:
        enc = OnnxRuntimeEncoder(path, device="cuda")
    except ModelMismatchError as exc:
        pytest.skip(f"ONNX Runtime could not use CUDA: {exc}")
    assert enc.name == "onnxruntime-cuda"
    assert check_parity(enc, TorchEncoder(gpu_model_dir, device="cpu"), RES).passes(min_psnr_db=40)


# ------------------------------------------------------------------ TensorRT (unverified in the build environment)


@pytest.fixture(scope="module")
def trt_engine(gpu_model_dir):
    pytest.importorskip("tensorrt")
    from cheartflow_sdk.export import export_engine

    return export_engine(gpu_model_dir, "tensorrt", max_batch=64)


def test_tensorrt_gate_metadata_and_timing_cache(gpu_model_dir, trt_engine):
    import tensorrt as trt

    path, report = trt_engine
    assert report.finite and report.psnr_db >= 40
    meta = contract.read_sidecar(path)
    assert meta[contract.META_TENSORRT_VERSION] == trt.__version__ and meta[contract.META_PRECISION] == "fp16"
    assert (gpu_model_dir / (contract.TENSORRT_FILENAME + ".timing-cache")).is_file()
    from cheartflow_sdk.export import verify_engine

    assert verify_engine(path).passed


def test_tensorrt_runtime(trt_engine):
    from cheartflow_sdk.backends.tensorrt_backend import TensorRTEncoder

    enc = TensorRTEncoder(trt_engine[0])
    direct = TensorRTEncoder(trt_engine[0], cuda_graphs=False)
    assert enc.buckets == (1, 8, 64)
    for batch in (1, 8, 5, 64, 70):  # 70 is chunked
        x, t = _inputs(batch, seed=batch)
        np.testing.assert_allclose(enc(x, t), direct(x, t), atol=2e-3)
    x, t = _inputs(8)
    first = enc(x, t)
    enc.allocate(8, force=True)
    np.testing.assert_allclose(enc(x, t), first, atol=1e-6)
    assert enc.captures >= 4
    xd, td = torch.from_numpy(x).cuda(), torch.from_numpy(t).cuda()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    out = enc(xd, td, stream=stream)
    stream.synchronize()
    np.testing.assert_allclose(out.cpu().numpy(), first, atol=1e-6)
    np.testing.assert_allclose(enc.torch_callable()(xd, td).cpu().numpy(), first, atol=2e-3)


def test_tensorrt_version_mismatch(trt_engine, tmp_path):
    copy = tmp_path / "model.engine"
    shutil.copy(trt_engine[0], copy)
    meta = contract.read_sidecar(trt_engine[0])
    contract.sidecar_path(copy).write_text(json.dumps({**meta, contract.META_TENSORRT_VERSION: "8.6.1"}))
    with pytest.raises(ModelMismatchError, match=r"TensorRT 8\.6\.1.*running: TensorRT"):
        cf.load_pipeline(copy)
    contract.sidecar_path(copy).write_text(json.dumps({**meta, contract.META_GPU_NAME: "Some Other GPU"}))
    with pytest.raises(ModelMismatchError, match="GPU Some Other GPU"):
        cf.load_pipeline(copy)
