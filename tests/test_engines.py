"""Engines without a GPU: registry choice, sidecar metadata checks, corrupt/foreign engines, mismatches
through load_pipeline, the export dispatcher, and (slow) a CPU AOTInductor package end to end."""

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk import contract
from cheartflow_sdk.backends import registry
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError, ModelNotAvailableError

from conftest import RES

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


def _sidecar(engine, **overrides):
    """Write a plausible sidecar for `engine` (a tiny edges model built for an H100 unless overridden)."""
    from cheartflow_sdk.config import ModelConfig

    from conftest import TINY_MODEL

    cfg = ModelConfig(**TINY_MODEL)
    from dataclasses import asdict

    meta = {
        contract.META_MODEL_CONFIG: json.dumps(asdict(cfg)), contract.META_SKETCH_KIND: cfg.sketch_kind,
        contract.META_RESOLUTION: str(cfg.resolution), contract.META_PRECISION: "fp16",
        contract.META_DEVICE: "cuda", contract.META_GPU_NAME: "NVIDIA H100 80GB HBM3",
        contract.META_COMPUTE_CAPABILITY: "9.0", contract.META_TORCH_VERSION: "2.11.0+cu130",
        contract.META_TENSORRT_VERSION: "10.13.0", contract.META_CUDA_VERSION: "13.0",
        contract.META_ENGINE_SHA256: contract.file_sha256(engine),
    }
    meta.update(overrides)
    meta = {k: v for k, v in meta.items() if v is not None}
    contract.sidecar_path(engine).write_text(json.dumps(meta))
    return meta


# ------------------------------------------------------------------ registry


def test_registry_by_file_kind(onnx_model, tmp_path):
    assert contract.engine_backend("a/model.onnx") == "onnxruntime"
    assert contract.engine_backend("m.engine") == contract.engine_backend("m.plan") == "tensorrt"
    assert contract.engine_backend("m.pt2") == "torch-compiled" and contract.engine_backend("m.bin") is None
    enc = registry.open_encoder(onnx_model, "auto", "cpu")
    assert enc.name == "onnxruntime-cpu"
    with pytest.raises(InvalidInputError, match="is a onnxruntime engine; backend='tensorrt' cannot open it"):
        registry.open_encoder(onnx_model, "tensorrt", "cpu")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="model folder or an .onnx, .engine/.plan or .pt2"):
        registry.open_encoder(tmp_path / "w.bin", "auto", "cpu")
    with pytest.raises(InvalidInputError, match="backend must be one of"):
        registry.open_encoder(onnx_model, "onnx", "cpu")


def test_registry_auto_order(model_copy, onnx_model, monkeypatch):
    """The documented order, as listed for a folder holding every engine kind (pure listing, nothing opened)."""
    for name in (contract.ONNX_FILENAME, contract.ONNX_FP16_FILENAME, contract.TENSORRT_FILENAME, contract.COMPILED_FILENAME):
        (model_copy / name).write_bytes(b"stub")
    _sidecar(model_copy / contract.COMPILED_FILENAME)
    monkeypatch.setattr(registry, "_installed", lambda m: True)
    monkeypatch.setattr(registry, "_ort_has_cuda", lambda: True)
    monkeypatch.setattr(registry, "_use_cuda", lambda d: True)
    listed = [(b, p.name) for b, p, _ in registry.candidates(model_copy, "auto")]
    assert listed == [("tensorrt", "model.engine"), ("torch-compiled", "model.pt2"), ("onnxruntime", "model.fp16.onnx"),
                      ("torch", "model"), ("onnxruntime", "model.onnx")]
    monkeypatch.setattr(registry, "_use_cuda", lambda d: False)
    listed = [(b, p.name) for b, p, _ in registry.candidates(model_copy, "cpu")]
    assert listed == [("onnxruntime", "model.onnx"), ("torch", "model")]  # the .pt2 is a CUDA package
    _sidecar(model_copy / contract.COMPILED_FILENAME, **{contract.META_DEVICE: "cpu"})
    listed = [b for b, _, _ in registry.candidates(model_copy, "cpu")]
    assert listed == ["onnxruntime", "torch-compiled", "torch"]


def test_registry_auto_skips_unusable_engines(model_copy, onnx_model, monkeypatch, caplog):
    """auto on CUDA: an engine built for another GPU is skipped with a warning, the next one is used."""
    shutil.copy(onnx_model, model_copy / contract.ONNX_FILENAME)
    (model_copy / contract.COMPILED_FILENAME).write_bytes(b"stub")
    _sidecar(model_copy / contract.COMPILED_FILENAME)
    monkeypatch.setattr(registry, "_use_cuda", lambda d: True)
    monkeypatch.setattr(registry, "_ort_has_cuda", lambda: False)
    with caplog.at_level("INFO", logger="cheartflow_sdk.backends.registry"):
        enc = registry.open_encoder(model_copy, "auto", "auto")
    assert enc.name == "torch"  # no CUDA here: torch on its "auto" device (CPU) comes before ORT-CPU on a GPU box
    assert "skipping torch-compiled" in caplog.text and "backend auto chose torch" in caplog.text
    with pytest.raises(ModelNotAvailableError, match="no tensorrt engine at .*--format tensorrt"):
        registry.open_encoder(model_copy, "tensorrt", "cuda")


def test_registry_empty_folder(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="holds no usable engine or checkpoint"):
        registry.open_encoder(tmp_path, "auto", "cpu")


def test_pipeline_backend_is_visible_and_logged(model_copy, onnx_model, caplog):
    shutil.copy(onnx_model, model_copy / contract.ONNX_FILENAME)
    with caplog.at_level("INFO"):
        pipe = cf.load_pipeline(model_copy, device="cpu")
    assert pipe.backend == "onnxruntime-cpu" and "backend auto chose onnxruntime-cpu" in caplog.text
    assert cf.load_pipeline(model_copy, backend="torch", device="cpu").backend == "torch"


# ------------------------------------------------------------------ build-environment checks


def test_check_build_environment_names_both_sides(caplog):
    meta = {contract.META_GPU_NAME: "NVIDIA H100", contract.META_COMPUTE_CAPABILITY: "9.0",
            contract.META_TENSORRT_VERSION: "10.13.0"}
    same = dict(meta)
    contract.check_build_environment(meta, same, "e.engine", strict=tuple(meta))
    other = {**meta, contract.META_COMPUTE_CAPABILITY: "8.9", contract.META_GPU_NAME: "NVIDIA L4"}
    with pytest.raises(ModelMismatchError, match=r"built for GPU NVIDIA H100, compute capability 9\.0.*running: GPU NVIDIA L4, "
                                                 r"compute capability 8\.9.*re-export"):
        contract.check_build_environment(meta, other, "e.engine", strict=tuple(meta))
    with pytest.raises(ModelMismatchError, match=r"TensorRT 10\.13\.0.*running: .*TensorRT 10\.9\.0"):
        contract.check_build_environment(meta, {**meta, contract.META_TENSORRT_VERSION: "10.9.0"}, "e.engine", strict=tuple(meta))
    with caplog.at_level("WARNING"):
        contract.check_build_environment(meta, other, "e.pt2", strict=(), warn=(contract.META_GPU_NAME,))
    assert "built with GPU NVIDIA H100, running NVIDIA L4" in caplog.text


def test_compiled_environment_compares_torch_major_minor():
    from cheartflow_sdk.backends.compiled_backend import check_compiled_environment

    meta = {contract.META_DEVICE: "cuda", contract.META_COMPUTE_CAPABILITY: "9.0", contract.META_TORCH_VERSION: "2.11.0+cu130"}
    check_compiled_environment(meta, {**meta, contract.META_TORCH_VERSION: "2.11.1+cu128"}, "m.pt2")
    with pytest.raises(ModelMismatchError, match="torch 2.11.*running: .*torch 2.13"):
        check_compiled_environment(meta, {**meta, contract.META_TORCH_VERSION: "2.13.0"}, "m.pt2")
    with pytest.raises(ModelMismatchError, match=r"device cuda.*running: device cpu"):
        check_compiled_environment(meta, {contract.META_DEVICE: "cpu", contract.META_TORCH_VERSION: "2.11.0"}, "m.pt2")


@pytest.mark.parametrize("suffix", [".pt2", ".engine"])
def test_sidecar_claiming_another_gpu(tmp_path, suffix):
    """An engine whose sidecar says it was built for a GPU this machine does not have."""
    pytest.importorskip("torch")
    import torch

    engine = tmp_path / f"model{suffix}"
    engine.write_bytes(b"engine bytes")
    _sidecar(engine, **{contract.META_GPU_NAME: "NVIDIA B200", contract.META_COMPUTE_CAPABILITY: "10.0"})
    if torch.cuda.is_available():
        pytest.skip("this check is for machines without that GPU; test_engines_gpu covers a GPU")
    with pytest.raises(ModelMismatchError, match=r"built for device cuda.*running: device cpu"):
        cf.load_pipeline(engine)
    with pytest.raises(ModelMismatchError):
        registry.open_encoder(engine, "auto", "auto")


@pytest.mark.parametrize("suffix", [".pt2", ".engine"])
def test_corrupt_gpu_engine_files(tmp_path, suffix):
    engine = tmp_path / f"model{suffix}"
    engine.write_bytes(b"not an engine")
    with pytest.raises(ModelMismatchError, match="has no metadata sidecar"):
        cf.load_pipeline(engine)
    _sidecar(engine)
    engine.write_bytes(b"not an engine either")  # bytes changed after export: the recorded hash differs
    with pytest.raises(InvalidInputError, match="is corrupt or was replaced"):
        cf.load_pipeline(engine)
    contract.sidecar_path(engine).write_text("{not json")
    with pytest.raises(InvalidInputError, match="not a readable JSON metadata sidecar"):
        cf.load_pipeline(engine)
    contract.sidecar_path(engine).write_text(json.dumps({"some": "thing"}))
    with pytest.raises(ModelMismatchError, match="holds no cheartflow metadata"):
        cf.load_pipeline(engine)


def test_corrupt_pt2_with_cpu_sidecar(tmp_path):
    """A CPU sidecar that matches this machine over a file that is no AOTInductor package."""
    import torch

    engine = tmp_path / "model.pt2"
    engine.write_bytes(b"garbage")
    _sidecar(engine, **{contract.META_DEVICE: "cpu", contract.META_GPU_NAME: None, contract.META_COMPUTE_CAPABILITY: None,
                        contract.META_TORCH_VERSION: torch.__version__, contract.META_ENGINE_SHA256: None})
    with pytest.raises(InvalidInputError, match="is not a loadable AOTInductor package"):
        cf.load_pipeline(engine)


def test_tensorrt_engine_refuses_cpu(tmp_path):
    from cheartflow_sdk.backends.tensorrt_backend import TensorRTEncoder

    with pytest.raises(ModelMismatchError, match="TensorRT engines run on CUDA GPUs only"):
        TensorRTEncoder(tmp_path / "model.engine", device="cpu")


# ------------------------------------------------------------------ engines for another model, through load_pipeline


def _onnx_with_config(src, dst, **changes):
    from dataclasses import asdict, replace

    proto = onnx.load(str(src))
    meta = {p.key: p for p in proto.metadata_props}
    cfg = replace(contract.config_from_metadata({k: p.value for k, p in meta.items()}, src), **changes)
    meta[contract.META_MODEL_CONFIG].value = json.dumps(asdict(cfg))
    onnx.save(proto, str(dst))
    return dst


def test_engine_for_another_sketch_kind(onnx_model, tmp_path, phantom_set):
    labels_engine = _onnx_with_config(onnx_model, tmp_path / "labels.onnx", sketch_kind="labels")
    pipe = cf.load_pipeline(labels_engine, device="cpu")
    assert pipe.config.sketch_kind == "labels"
    with pytest.raises(ModelMismatchError, match="trained on 'labels' sketches but the input is declared 'edges'"):
        pipe.synthesize(phantom_set[2][:2], sketch_kind="edges")


def test_engine_for_another_resolution(onnx_model):
    pipe = cf.load_pipeline(onnx_model, device="cpu")
    with pytest.raises(ModelMismatchError, match=f"expects {RES}x{RES} sketches, got 64x64"):
        pipe.synthesize(np.zeros((1, 64, 64), np.uint8))


def test_export_engine_dispatch(model_copy):
    from cheartflow_sdk.export import export_engine

    with pytest.raises(InvalidInputError, match="format must be one of"):
        export_engine(model_copy, "tflite")
    path, report = export_engine(model_copy, "onnx", gate=False)
    assert path == model_copy / contract.ONNX_FILENAME and report is None


def test_gpu_exports_refuse_without_cuda(model_copy):
    import torch

    from cheartflow_sdk.export import export_engine

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ModelMismatchError, match="torch sees no CUDA GPU here; use device='cpu'"):
        export_engine(model_copy, "torch-compiled")
    with pytest.raises(InvalidInputError, match="must end in .pt2"):
        export_engine(model_copy, "torch-compiled", model_copy / "m.bin", device="cpu")
    assert not (model_copy / contract.COMPILED_FILENAME).exists()


def test_fp16_program_exports_with_dynamic_batch(trained_model_dir):
    """The torch.export step of the CUDA compiled engine, on CPU: fp16 module, fp32 IO, batch 1..256."""
    import torch

    from cheartflow_sdk.backends.torch_backend import TorchEncoder
    from cheartflow_sdk.export.fp16 import half_encoder
    from cheartflow_sdk.export.parity import check_parity
    from cheartflow_sdk.export.torch_compiled import export_program

    ref = TorchEncoder(trained_model_dir)
    program = export_program(half_encoder(ref.module), RES, "cpu", 256)
    (bounds,) = program.range_constraints.values()
    assert (bounds.lower, bounds.upper) == (1, 256)
    module = program.module()

    def run(x, t):
        out = module(torch.from_numpy(x), torch.from_numpy(t))
        assert out.dtype == torch.float32
        return out.detach().numpy()

    assert check_parity(run, ref, RES).passes(min_psnr_db=40)
    assert run(np.zeros((1, 1, RES, RES), np.float32), np.ones(1, np.float32)).shape == (1, 1, RES, RES)


# ------------------------------------------------------------------ compiled engine on CPU (slow: ~40 s compile)


@pytest.fixture(scope="module")
def cpu_package(trained_model_dir, tmp_path_factory):
    from cheartflow_sdk.export import export_engine

    folder = tmp_path_factory.mktemp("compiled_cpu")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(trained_model_dir / name, folder / name)
    path, report = export_engine(folder, "torch-compiled", device="cpu")
    return folder, path, report


@pytest.mark.slow
def test_cpu_compiled_package_end_to_end(cpu_package):
    from cheartflow_sdk.backends.compiled_backend import CompiledEncoder
    from cheartflow_sdk.backends.torch_backend import TorchEncoder
    from cheartflow_sdk.export import verify_engine

    folder, path, report = cpu_package
    assert path == folder / contract.COMPILED_FILENAME and report.passes(max_abs_error=1e-4)
    meta = contract.read_sidecar(path)
    assert meta[contract.META_FORMAT] == "torch-compiled" and meta[contract.META_PRECISION] == "fp32"
    assert meta[contract.META_DEVICE] == "cpu" and meta[contract.META_ENGINE_SHA256] == contract.file_sha256(path)
    assert meta[contract.META_SOURCE_SHA256] == contract.file_sha256(folder / "model.safetensors")
    assert json.loads(meta[contract.META_BATCH_BUCKETS]) == [1, 8, 64, 256]
    enc = CompiledEncoder(path)
    ref = TorchEncoder(folder)
    assert enc.config == ref.config and enc.name == "torch-compiled" and enc.torch_callable() is None
    rng = np.random.default_rng(1)
    for batch in (1, 5, 300):  # dynamic batch; 300 is chunked at max_batch 256
        x = rng.uniform(-1, 1, (batch, 1, RES, RES)).astype(np.float32)
        t = rng.uniform(0, 1, batch).astype(np.float32)
        assert np.abs(enc(x, t) - ref(x, t)).max() <= 1e-4
    with pytest.raises(InvalidInputError, match=r"expected x \[B, 1, 32, 32\]"):
        enc(np.zeros((1, 1, 16, 16), np.float32), np.ones(1, np.float32))
    assert verify_engine(path).passed
    # The folder holds a CPU package and a checkpoint (no ONNX): auto on CPU takes the package.
    assert cf.load_pipeline(folder, device="cpu").backend == "torch-compiled"
    pipe = cf.load_pipeline(path)
    out = pipe.synthesize(np.zeros((3, RES, RES), np.uint8), steps=2)
    torch_out = cf.load_pipeline(folder, backend="torch", device="cpu").synthesize(np.zeros((3, RES, RES), np.uint8), steps=2)
    assert np.abs(out - torch_out).max() < 1e-4


@pytest.mark.slow
def test_cpu_compiled_package_loads_without_training_code(cpu_package, tmp_path):
    code = (
        "import sys, numpy as np, cheartflow_sdk as cf\n"
        f"pipe = cf.load_pipeline({str(cpu_package[1])!r})\n"
        "assert pipe.backend == 'torch-compiled'\n"
        "out = pipe.synthesize(np.zeros((2, 32, 32), np.uint8))\n"
        "assert out.shape == (2, 1, 32, 32)\n"
        "bad = [m for m in sys.modules if m.startswith(('cheartflow_sdk.training', 'cheartflow_sdk.models', 'cheartflow_sdk.export'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=300)


@pytest.mark.slow
def test_cpu_compiled_mismatches(cpu_package, tmp_path, phantom_set):
    path = cpu_package[1]
    copy = tmp_path / "model.pt2"
    shutil.copy(path, copy)
    meta = contract.read_sidecar(path)
    cfg = json.loads(meta[contract.META_MODEL_CONFIG])
    contract.sidecar_path(copy).write_text(json.dumps({**meta, contract.META_MODEL_CONFIG: json.dumps({**cfg, "sketch_kind": "labels"})}))
    pipe = cf.load_pipeline(copy)
    with pytest.raises(ModelMismatchError, match="trained on 'labels' sketches"):
        pipe.synthesize(phantom_set[2][:1], sketch_kind="edges")
    contract.sidecar_path(copy).write_text(json.dumps({**meta, contract.META_TORCH_VERSION: "1.13.1"}))
    with pytest.raises(ModelMismatchError, match=r"torch 1\.13.*running: .*torch 2\."):
        cf.load_pipeline(copy)
    with pytest.raises(ModelMismatchError, match=r"compiled for 'cpu' but device='cuda'|device='cuda' asks for a CUDA GPU but none is usable"):
        cf.load_pipeline(path, device="cuda")


class _FakeCuda:
    """Just enough of torch.cuda for BucketGraphs' bookkeeping (capture itself is covered on a GPU)."""

    def __init__(self, fail: bool = False):
        self.fail, self.log = fail, []
        outer = self

        class Stream:
            def __init__(self, device):
                self.cuda_stream = 7

            def wait_stream(self, other):
                pass

            def synchronize(self):
                outer.log.append("sync")

        class CUDAGraph:
            pass

        self.Stream, self.CUDAGraph = Stream, CUDAGraph

    def device(self, device):
        return contextlib.nullcontext()

    def current_stream(self, device):
        return None

    def stream(self, s):
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def graph(self, graph, stream=None):
        self.log.append("capture")
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        yield

    def synchronize(self, device):
        self.log.append("device sync")


def _graphed(fail: bool = False):
    from types import SimpleNamespace

    from cheartflow_sdk.runtime.graph_capture import BucketGraphs

    host = BucketGraphs()
    host._torch, host.device, host.path = SimpleNamespace(cuda=_FakeCuda(fail)), "cuda:0", Path("m.pt2")
    host._init_graphs(True)
    return host


def test_bucket_graphs_capture_once_per_buffer_set_and_recapture_when_buffers_move():
    host, calls = _graphed(), []
    prepare, body = (lambda s: calls.append("prepare")), (lambda s: calls.append("body"))
    g1 = host._bucket_graph(8, (100, 200), prepare, body)
    assert host._bucket_graph(8, (100, 200), prepare, body) is g1 and calls == ["prepare", "body"]
    g2 = host._bucket_graph(8, (300, 200), prepare, body)  # buffers reallocated: a new graph
    assert g2 is not g1 and host.captures == 2 and calls == ["prepare", "body"] * 2
    host._bucket_graph(64, (1, 2), prepare, body)
    assert host.captures == 3 and host.cuda_graphs and host.graph_error is None


def test_bucket_graphs_failed_capture_turns_graphs_off_with_the_reason(caplog):
    host = _graphed(fail=True)
    assert host._bucket_graph(1, (1, 2), lambda s: None, lambda s: None) is None
    assert not host.cuda_graphs and "stream is capturing" in host.graph_error and host.captures == 0
    assert "running without graphs" in caplog.text and host._torch.cuda.log[-1] == "device sync"


# ------------------------------------------------------------------ the GPU engines' shared call (engine_call)


class _StaticBufferEngine:
    """A stand-in GPU engine: `_run_chunk` writes 2x + t into one static buffer, as a graphed engine does."""

    def __init__(self, resolution: int = 8, max_batch: int = 3):
        import torch
        from types import SimpleNamespace

        self._torch, self.device, self.max_batch = torch, torch.device("cpu"), max_batch
        self.config = SimpleNamespace(resolution=resolution)
        self.static = torch.zeros(max_batch, 1, resolution, resolution)
        self.chunks: list[int] = []

    def _run_chunk(self, x, t):
        n = x.shape[0]
        assert n <= self.max_batch and x.dtype == self._torch.float32
        self.chunks.append(n)
        self.static[:n] = 2 * x + t.view(-1, 1, 1, 1)
        return self.static[:n]


def test_engine_call_chunks_converts_and_copies_out_of_static_buffers():
    import torch

    from cheartflow_sdk.backends.engine_call import call_in_chunks

    engine = _StaticBufferEngine()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 1, 8, 8)).astype(np.float64)  # float64 in: converted to float32
    t = rng.uniform(size=7)
    want = (2 * x + t[:, None, None, None]).astype(np.float32)
    out = call_in_chunks(engine, x, t)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and engine.chunks == [3, 3, 1]
    np.testing.assert_allclose(out, want, atol=1e-6)
    out_t = call_in_chunks(engine, torch.from_numpy(x), torch.from_numpy(t))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), want, atol=1e-6)
    before = out_t.clone()
    call_in_chunks(engine, torch.zeros(3, 1, 8, 8), torch.zeros(3))  # overwrites the static buffer
    assert torch.equal(out_t, before), "results must not alias the engine's static buffers"
    empty = call_in_chunks(engine, np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.float32))
    assert empty.shape == (0, 1, 8, 8) and empty.dtype == np.float32


@pytest.mark.parametrize("x_shape, t_shape", [((2, 1, 8, 4), (2,)), ((2, 8, 8), (2,)), ((2, 1, 8, 8), (3,))])
def test_engine_call_rejects_wrong_shapes(x_shape, t_shape):
    from cheartflow_sdk.backends.engine_call import call_in_chunks

    engine = _StaticBufferEngine()
    with pytest.raises(InvalidInputError, match=r"expected x \[B, 1, 8, 8\] and t \[B\]"):
        call_in_chunks(engine, np.zeros(x_shape, np.float32), np.zeros(t_shape, np.float32))
    assert engine.chunks == []
