"""ONNX export: parity with the torch encoder, metadata, dynamic batch, the parity gate, bad engines."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from cheartflow_sdk import contract  # noqa: E402
from cheartflow_sdk.backends.onnxruntime_backend import OnnxRuntimeEncoder  # noqa: E402
from cheartflow_sdk.backends.torch_backend import TorchEncoder  # noqa: E402
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError  # noqa: E402
from cheartflow_sdk.export import check_parity, export_onnx, parity_inputs  # noqa: E402

from conftest import RES  # noqa: E402


def test_ort_matches_torch_fp32(trained_model_dir, onnx_model):
    ort_enc = OnnxRuntimeEncoder(onnx_model, device="cpu")
    torch_enc = TorchEncoder(trained_model_dir, device="cpu")
    assert ort_enc.providers == ["CPUExecutionProvider"]
    rng = np.random.default_rng(3)
    for batch in (1, 5):  # dynamic batch
        x = rng.uniform(-1, 1, (batch, 1, RES, RES)).astype(np.float32)
        t = rng.uniform(0, 1, batch).astype(np.float32)
        assert np.abs(ort_enc(x, t) - torch_enc(x, t)).max() <= 1e-4
    report = check_parity(ort_enc, torch_enc, RES)
    assert report.finite and report.max_abs_error <= 1e-4 and report.n_inputs == len(parity_inputs(RES)[0])


def test_ort_cpu_runs_large_batches_in_chunks(trained_model_dir, onnx_model, monkeypatch):
    from cheartflow_sdk.backends import chunking

    ort_enc = OnnxRuntimeEncoder(onnx_model, device="cpu")
    sizes = []
    run = ort_enc._run
    monkeypatch.setattr(ort_enc, "_run", lambda x, t: sizes.append(len(x)) or run(x, t))
    n = 2 * chunking.CPU_CHUNK + 3
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (n, 1, RES, RES)).astype(np.float32)
    t = rng.uniform(0, 1, n).astype(np.float32)
    out = ort_enc(x, t)
    chunk = chunking.CPU_CHUNK
    assert sizes == [chunk, chunk, 3]  # memory of CPU_CHUNK images, whatever the batch
    assert out.shape == (n, 1, RES, RES)
    assert np.abs(out - TorchEncoder(trained_model_dir, device="cpu")(x, t)).max() <= 1e-4


def test_metadata_round_trip(trained_model_dir, onnx_model):
    proto = onnx.load(str(onnx_model))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[contract.META_SKETCH_KIND] == "edges"
    assert meta[contract.META_RESOLUTION] == str(RES)
    assert float(meta[contract.META_SIGMA]) == 0.5
    assert json.loads(meta[contract.META_DEFAULT_SCHEDULE]) == [0.5]
    assert meta[contract.META_PRECISION] == "fp32" and len(meta[contract.META_SOURCE_SHA256]) == 64
    assert meta[contract.META_FORMAT] == "onnx"
    assert meta[contract.META_SOURCE_SHA256] == contract.file_sha256(trained_model_dir / "model.safetensors")
    assert meta[contract.META_SOURCE_PATH] == trained_model_dir.resolve().name  # no build-machine path
    assert not [k for k, v in meta.items() if str(trained_model_dir.resolve().parent) in v]
    assert proto.opset_import[0].version >= 17
    enc = OnnxRuntimeEncoder(onnx_model, device="cpu")
    assert enc.config == TorchEncoder(trained_model_dir).config


def test_gate_rejects_a_broken_engine(trained_model_dir):
    torch_enc = TorchEncoder(trained_model_dir, device="cpu")

    def broken(x, t):
        out = torch_enc(x, t)
        out[0, 0, 0, 0] = np.nan
        return out

    assert not check_parity(broken, torch_enc, RES).passes(max_abs_error=1e-4)
    assert not check_parity(lambda x, t: torch_enc(x, t) + 1e-3, torch_enc, RES).passes(max_abs_error=1e-4)


def test_export_fails_with_numbers_and_writes_nothing(trained_model_dir, tmp_path, monkeypatch):
    from cheartflow_sdk.export import parity

    monkeypatch.setattr(parity, "FP32_MAX_ABS_ERROR", -1.0)  # force the gate to fail: no error is small enough
    out = tmp_path / "engine.onnx"
    with pytest.raises(ModelMismatchError, match=r"max abs error .* PSNR .*limit for fp32.*nothing written"):
        export_onnx(trained_model_dir, out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_corrupt_and_foreign_engines(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(InvalidInputError, match="not a loadable ONNX model"):
        OnnxRuntimeEncoder(bad)
    # A valid ONNX model without cheartflow metadata.
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["x0_hat"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 4, 4])],
                              [helper.make_tensor_value_info("x0_hat", TensorProto.FLOAT, [None, 1, 4, 4])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(foreign))
    with pytest.raises(ModelMismatchError, match="no cheartflow metadata"):
        OnnxRuntimeEncoder(foreign)
    with pytest.raises(InvalidInputError, match="expected an ONNX engine file"):
        OnnxRuntimeEncoder(tmp_path / "missing.onnx")


def test_export_to_other_path(trained_model_dir, tmp_path):
    path, report = export_onnx(trained_model_dir, tmp_path / "sub" / "e.onnx")
    assert path.is_file() and report.passes(max_abs_error=1e-4)


def _perturb_output_conv(src, dst, delta):
    """A copy of the ONNX engine `src` whose last Conv bias is shifted by `delta` (a deliberately broken engine)."""
    from onnx import numpy_helper

    proto = onnx.load(str(src))
    inits = {i.name: i for i in proto.graph.initializer}
    bias = inits[[n for n in proto.graph.node if n.op_type == "Conv"][-1].input[2]]
    value = numpy_helper.to_array(bias)
    bias.CopyFrom(numpy_helper.from_array((value + delta).astype(value.dtype), bias.name))
    onnx.save(proto, str(dst))
    return dst


def test_verify_passes_and_rejects_a_perturbed_engine(trained_model_dir, onnx_model, tmp_path):
    from cheartflow_sdk.export import verify_engine

    report = verify_engine(onnx_model)
    assert report.passed and report.source_matches and report.backend == "onnxruntime-cpu"
    assert report.precision == "fp32" and report.max_abs_error <= 1e-4
    broken = _perturb_output_conv(onnx_model, tmp_path / "broken.onnx", 0.05)
    report = verify_engine(broken, reference_model_dir=trained_model_dir)
    assert report.source_matches and not report.gate_passed and not report.passed
    assert report.max_abs_error > 1e-4 and "FAILED" in report.summary()
    with pytest.raises(ModelMismatchError, match="verify failed: .*parity gate FAILED"):
        verify_engine(broken, reference_model_dir=trained_model_dir, raise_on_failure=True)
    # the engine records its source by name only (no build-machine path): found beside the engine's folder
    beside = trained_model_dir.parent / "elsewhere"
    beside.mkdir(exist_ok=True)
    moved = _perturb_output_conv(onnx_model, beside / "broken.onnx", 0.05)
    assert verify_engine(moved).source_matches


def test_verify_needs_the_source_checkpoint(onnx_model, tmp_path):
    from cheartflow_sdk.errors import ModelNotAvailableError
    from cheartflow_sdk.export import verify_engine

    proto = onnx.load(str(onnx_model))
    for p in proto.metadata_props:
        if p.key == contract.META_SOURCE_PATH:
            p.value = str(tmp_path / "gone")
    moved = tmp_path / "moved.onnx"
    onnx.save(proto, str(moved))
    with pytest.raises(ModelNotAvailableError, match="needs its source checkpoint"):
        verify_engine(moved)
    with pytest.raises(InvalidInputError, match="expected an engine file"):
        verify_engine(tmp_path)


def test_verify_reports_a_different_checkpoint(trained_model_dir, onnx_model, tmp_path):
    import shutil

    from cheartflow_sdk.export import verify_engine

    other = tmp_path / "other"
    shutil.copytree(trained_model_dir, other, ignore=shutil.ignore_patterns("*.onnx", "train_state"))
    from safetensors.torch import load_file, save_file

    weights = other / "model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={"note": "re-saved"})  # same weights, other bytes
    report = verify_engine(onnx_model, reference_model_dir=other)
    assert report.gate_passed and not report.source_matches and not report.passed
    assert "DIFFERS" in report.summary()


def test_two_pass_group_norm_equals_group_norm_and_exports_without_instance_norm(tmp_path):
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from cheartflow_sdk.export.onnx_groupnorm import two_pass_group_norms

    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.GroupNorm(8, 16), torch.nn.SiLU())
    with torch.no_grad():
        block[1].weight.uniform_(0.5, 1.5)
        block[1].bias.uniform_(-0.5, 0.5)
    export_copy = two_pass_group_norms(block)
    assert type(block[1]) is torch.nn.GroupNorm  # the original is untouched
    # (the regression itself, a trained encoder's fp32 engine at 4.7e-4, is test_default_models' fp32 verify)
    x = torch.rand(2, 1, 128, 128) * 0.3 + 0.6
    with torch.no_grad():
        ref64 = block.double()(x.double()).numpy()
        block.float()
        assert np.abs(export_copy(x).double().numpy() - ref64).max() < 1e-5
    path = tmp_path / "gn.onnx"
    torch.onnx.export(export_copy, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    assert "InstanceNormalization" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert np.abs(out - ref64).max() < 1e-5
