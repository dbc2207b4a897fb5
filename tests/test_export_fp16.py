"""fp16 ONNX export: fp16 weights and compute with fp32 IO, GroupNorm/attention in fp32, ORT parity, the gate.

ONNX Runtime's CPU provider has few fp16 kernels: it inserts casts around the others, so on CPU an fp16
engine computes mostly in fp32 on fp16-rounded weights and fp16-rounded activations at the cast points.
That is still a real fp16 engine (its error vs fp32 is measurable, see test_fp16_is_really_fp16); the fp16
kernels themselves run on the GPU (ONNX Runtime CUDA, TensorRT), tested in test_engines_gpu.py.
"""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from cheartflow_sdk import contract  # noqa: E402
from cheartflow_sdk.backends.onnxruntime_backend import OnnxRuntimeEncoder  # noqa: E402
from cheartflow_sdk.backends.torch_backend import TorchEncoder  # noqa: E402
from cheartflow_sdk.errors import ModelMismatchError  # noqa: E402
from cheartflow_sdk.export import export_engine, export_onnx_fp16, verify_engine  # noqa: E402

from conftest import RES  # noqa: E402


@pytest.fixture(scope="module")
def active_model_dir(trained_model_dir, tmp_path_factory):
    """The tiny model with a re-initialized output conv, so F(x, t) contributes and fp16 rounding shows
    (the 40-step model's output conv is still near its zero init)."""
    from cheartflow_sdk.training.checkpoint import load_encoder, save_model

    enc = load_encoder(trained_model_dir)
    torch.manual_seed(0)
    enc.net.out_conv.reset_parameters()
    out = tmp_path_factory.mktemp("active_model")
    save_model(enc, out)
    return out


@pytest.fixture(scope="module")
def fp16_engine(active_model_dir):
    path, report = export_engine(active_model_dir, "onnx-fp16")
    return path, report


def test_fp16_export_parity_and_metadata(active_model_dir, fp16_engine):
    path, report = fp16_engine
    assert path == active_model_dir / contract.ONNX_FP16_FILENAME and path.is_file()
    assert report.finite and report.psnr_db >= 40
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[contract.META_PRECISION] == "fp16" and meta[contract.META_FORMAT] == "onnx-fp16"
    assert meta[contract.META_SKETCH_KIND] == "edges" and meta[contract.META_RESOLUTION] == str(RES)
    assert json.loads(meta[contract.META_DEFAULT_SCHEDULE]) == [0.5] and float(meta[contract.META_SIGMA]) == 0.5
    assert meta[contract.META_SOURCE_SHA256] == contract.file_sha256(active_model_dir / "model.safetensors")
    enc = OnnxRuntimeEncoder(path, device="cpu")
    ref = TorchEncoder(active_model_dir)
    assert enc.config == ref.config and enc.precision == "fp16"
    rng = np.random.default_rng(0)
    for batch in (1, 3):  # dynamic batch, fp32 in and out
        x = rng.uniform(-1, 1, (batch, 1, RES, RES)).astype(np.float32)
        t = rng.uniform(0, 1, batch).astype(np.float32)
        out = enc(x, t)
        assert out.dtype == np.float32 and out.shape == x.shape
        assert np.abs(out - ref(x, t)).max() < 0.02


def test_fp16_graph_types(fp16_engine):
    """fp32 inputs/outputs, fp16 conv weights, every GroupNorm reduction in fp32."""
    proto = onnx.load(str(fp16_engine[0]))
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert all(v.type.tensor_type.elem_type == f32 for v in [*proto.graph.input, *proto.graph.output])
    inits = {i.name: i.data_type for i in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    # Convolutions outside the fp32 islands (attention's 1x1 convs stay fp32) run in fp16.
    assert sum(inits.get(n.input[1]) == f16 for n in convs) >= len(convs) // 2
    # GroupNorm exports as two-stage ReduceMeans (export/onnx_groupnorm.py), none as InstanceNormalization.
    assert not [n for n in proto.graph.node if n.op_type == "InstanceNormalization"]
    typed = onnx.shape_inference.infer_shapes(proto)
    elem = {v.name: v.type.tensor_type.elem_type for v in [*typed.graph.value_info, *typed.graph.input]}
    means = [n for n in proto.graph.node if n.op_type == "ReduceMean"]
    assert means and all(elem.get(n.input[0]) == f32 for n in means)
    softmax = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert softmax  # attention is present in the tiny model


def test_fp16_is_really_fp16(active_model_dir, fp16_engine):
    """The fp16 engine differs measurably from fp32 (more than the fp32 gate allows) yet passes its own gate."""
    from cheartflow_sdk.export import check_parity

    report = check_parity(OnnxRuntimeEncoder(fp16_engine[0], device="cpu"), TorchEncoder(active_model_dir), RES)
    assert 40 <= report.psnr_db < 140
    assert report.max_abs_error > 0


def test_half_encoder_keeps_islands_fp32(active_model_dir):
    from torch import nn

    from cheartflow_sdk.export.fp16 import Fp32Island, half_encoder
    from cheartflow_sdk.models.unet import SelfAttention

    ref = TorchEncoder(active_model_dir).module
    half = half_encoder(ref)
    assert next(ref.parameters()).dtype == torch.float32  # the original is untouched
    islands = [m for m in half.modules() if isinstance(m, Fp32Island)]
    assert islands and all(p.dtype == torch.float32 for m in islands for p in m.parameters())
    assert {type(m.inner) for m in islands} == {nn.GroupNorm, SelfAttention}
    island_params = {id(p) for m in islands for p in m.parameters()}
    assert all(p.dtype == torch.float16 for p in half.parameters() if id(p) not in island_params)
    # Island weights are the exact fp32 originals (not fp16-rounded).
    ref_norm = ref.net.out_norm
    assert torch.equal(half.net.out_norm.inner.weight, ref_norm.weight)
    x, t = torch.rand(2, 1, RES, RES) * 2 - 1, torch.tensor([1.0, 0.5])
    with torch.no_grad():
        out = half(x, t)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_fp16_verify_and_broken_engine(active_model_dir, fp16_engine, tmp_path):
    from test_export_onnx import _perturb_output_conv

    report = verify_engine(fp16_engine[0])
    assert report.passed and report.precision == "fp16"
    broken = _perturb_output_conv(fp16_engine[0], tmp_path / "broken.fp16.onnx", 1.0)
    report = verify_engine(broken, reference_model_dir=active_model_dir)
    assert not report.passed and report.psnr_db < 40


def test_fp16_gate_failure_writes_nothing(active_model_dir, tmp_path, monkeypatch):
    from cheartflow_sdk.export import parity

    monkeypatch.setattr(parity, "FP16_MIN_PSNR_DB", 1000.0)
    out = tmp_path / "sub" / "e.fp16.onnx"
    with pytest.raises(ModelMismatchError, match=r"PSNR .* dB.*limit for fp16: PSNR >= 1000 dB.*nothing written"):
        export_onnx_fp16(active_model_dir, out)
    assert not out.exists() and not list(out.parent.iterdir())


def test_folder_prefers_fp32_onnx_on_cpu(active_model_dir, fp16_engine, tmp_path):
    import cheartflow_sdk as cf

    folder = tmp_path / "only_fp16"
    folder.mkdir()
    shutil.copy(fp16_engine[0], folder / contract.ONNX_FP16_FILENAME)
    pipe = cf.load_pipeline(folder, device="cpu")  # an fp16-only folder still opens in ORT (CPU)
    assert pipe.backend == "onnxruntime-cpu" and pipe.encoder.precision == "fp16"
    out = pipe.synthesize(np.zeros((2, RES, RES), np.uint8), steps=2)
    assert out.shape == (2, 1, RES, RES) and np.isfinite(out).all()
