"""GroupNorm as one ONNX op (groupnorm="fused") or from per-channel statistics (groupnorm="channelwise"): the
graphs' shape, and the same outputs as the two-pass graph."""

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from torch import nn  # noqa: E402

from cheartflow_sdk import contract  # noqa: E402
from cheartflow_sdk.backends.torch_backend import TorchEncoder  # noqa: E402
from cheartflow_sdk.export import FP32_MAX_ABS_ERROR, check_parity, export_onnx, parity_inputs  # noqa: E402
from cheartflow_sdk.export.fused_groupnorm import FUSED_OPSET, to_group_normalization  # noqa: E402

from conftest import RES  # noqa: E402


def _group_norm_count(model_dir) -> int:
    return sum(type(m) is nn.GroupNorm for m in TorchEncoder(model_dir, device="cpu").module.modules())


@pytest.fixture()
def fused_onnx(model_copy, tmp_path):
    path, report = export_onnx(model_copy, tmp_path / "model.fused.onnx", groupnorm="fused", gate=False)
    assert report is None
    return path


def test_fused_graph_has_one_group_normalization_per_group_norm(model_copy, fused_onnx):
    proto = onnx.load(str(fused_onnx))
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("GroupNormalization") == _group_norm_count(model_copy) > 0
    assert "InstanceNormalization" not in ops and "ReduceMean" not in ops  # neither torch's nor the two-pass form
    assert {op.domain: op.version for op in proto.opset_import} == {"": FUSED_OPSET}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[contract.META_GROUPNORM] == "fused" and meta[contract.META_FORMAT] == "onnx"


def test_fused_graph_gives_the_two_pass_outputs_in_onnxruntime(trained_model_dir, onnx_model, fused_onnx):
    from cheartflow_sdk.backends.onnxruntime_backend import OnnxRuntimeEncoder

    x, t = parity_inputs(RES)
    two_pass = OnnxRuntimeEncoder(onnx_model, device="cpu")
    fused = OnnxRuntimeEncoder(fused_onnx, device="cpu")
    assert np.abs(fused(x, t) - two_pass(x, t)).max() <= FP32_MAX_ABS_ERROR
    assert check_parity(fused, TorchEncoder(trained_model_dir, device="cpu"), RES).passes(max_abs_error=FP32_MAX_ABS_ERROR)
    assert {p.key: p.value for p in onnx.load(str(onnx_model)).metadata_props}[contract.META_GROUPNORM] == "two-pass"


def test_fused_graph_gives_the_two_pass_outputs_in_openvino(model_copy, onnx_model, tmp_path):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder

    path, report = export_onnx(model_copy, tmp_path / "gated.fused.onnx", groupnorm="fused")  # gated in OpenVINO
    assert report is not None and report.finite
    x, t = parity_inputs(RES)
    fused = OpenVINOEncoder(path, device="cpu", precision="fp32")
    two_pass = OpenVINOEncoder(onnx_model, device="cpu", precision="fp32")
    assert np.abs(fused(x, t) - two_pass(x, t)).max() <= FP32_MAX_ABS_ERROR
    assert report.max_abs_error <= FP32_MAX_ABS_ERROR  # fp32 in OpenVINO stays within even the fp32 gate here


def test_channelwise_group_norm_computes_nn_group_norm():
    import torch

    from cheartflow_sdk.export.onnx_groupnorm import ChannelwiseGroupNorm, with_group_norm_class

    norm = nn.GroupNorm(4, 16)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, 16, 9, 7) * 5 + 2
    channelwise = with_group_norm_class(nn.Sequential(norm), ChannelwiseGroupNorm)
    assert type(channelwise[0]) is ChannelwiseGroupNorm and type(norm) is nn.GroupNorm  # a copy; the original kept
    with torch.no_grad():
        assert torch.allclose(channelwise(x), norm(x), atol=1e-5)


def test_channelwise_graph_reshapes_only_the_statistics_and_matches_in_openvino(model_copy, onnx_model, tmp_path):
    pytest.importorskip("openvino")
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder

    path, report = export_onnx(model_copy, tmp_path / "gated.channelwise.onnx", groupnorm="channelwise")
    assert report is not None and report.finite  # gated in OpenVINO
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert "GroupNormalization" not in ops and "InstanceNormalization" not in ops
    assert ops.count("ReduceMean") >= 2 * _group_norm_count(model_copy) > 0  # spatial means, then group means
    assert {p.key: p.value for p in proto.metadata_props}[contract.META_GROUPNORM] == "channelwise"
    x, t = parity_inputs(RES)
    channelwise = OpenVINOEncoder(path, device="cpu", precision="fp32")
    two_pass = OpenVINOEncoder(onnx_model, device="cpu", precision="fp32")
    assert np.abs(channelwise(x, t) - two_pass(x, t)).max() <= 10 * FP32_MAX_ABS_ERROR  # fp32, reduced in another order


@pytest.mark.parametrize("groupnorm", ["channelwise", "fused", "two-pass"])
def test_openvino_export_reads_the_asked_groupnorm_form(model_copy, groupnorm):
    ov = pytest.importorskip("openvino")
    from cheartflow_sdk.backends.openvino_backend import OpenVINOEncoder
    from cheartflow_sdk.export import export_engine

    path, report = export_engine(model_copy, "openvino", groupnorm=groupnorm)
    assert report is not None and report.finite
    ops = [op.get_type_name() for op in ov.Core().read_model(str(path)).get_ordered_ops()]
    assert ops.count("GroupNormalization") == (_group_norm_count(model_copy) if groupnorm == "fused" else 0)
    assert OpenVINOEncoder(path).metadata[contract.META_GROUPNORM] == groupnorm


def test_openvino_exports_default_to_the_channelwise_form():
    import inspect

    from cheartflow_sdk.export.openvino_export import export_openvino, export_openvino_int8

    for fn in (export_openvino, export_openvino_int8):
        assert inspect.signature(fn).parameters["groupnorm"].default == "channelwise"


def test_bad_groupnorm_options_are_refused(model_copy, tmp_path):
    with pytest.raises(ValueError, match="groupnorm must be one of"):
        export_onnx(model_copy, tmp_path / "x.onnx", groupnorm="instance")
    with pytest.raises(ValueError, match="fp32 only"):
        export_onnx(model_copy, tmp_path / "x.onnx", groupnorm="fused", precision="fp16")
    with pytest.raises(ValueError, match="fp32 only"):
        export_onnx(model_copy, tmp_path / "x.onnx", groupnorm="channelwise", precision="fp16")
    assert not list(tmp_path.glob("x.onnx*"))


def test_an_op_that_changes_meaning_at_opset_21_is_not_moved():
    from onnx import TensorProto, helper

    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"])  # opset 21 adds blocked quantization
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [2])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [], [1.0])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    with pytest.raises(ValueError, match="QuantizeLinear"):
        to_group_normalization(proto)
