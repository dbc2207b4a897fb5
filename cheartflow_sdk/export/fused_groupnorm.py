"""GroupNorm as one ONNX op (GroupNormalization-21) for OpenVINO, whose CPU plugin runs it as one MVN kernel.

Measured on the shipped edges model (51 GroupNorms) against the fp32 PyTorch encoder, 40 gate inputs:

* OpenVINO 2026.4 reads the op natively: fp32 max abs error 7.1e-5 (116.4 dB), bf16 48.0 dB; the two-pass
  graph of onnx_groupnorm.py, reduced op by op, gives 2.7e-4 (106.4 dB) and 47.2 dB.
* ONNX Runtime 1.31 has no CPU kernel for it and expands its function body, whose means are one fp32
  running sum per group: 1.1e-3 max abs error, over the fp32 gate (1e-4). So the ONNX Runtime engine
  (model.onnx) keeps the two-pass graph and only OpenVINO reads this one.

Opset 18's GroupNormalization (per-group scale and bias) is deprecated and fails onnx.checker; opset 21's
takes per-channel scale and bias, as nn.GroupNorm. The TorchScript exporter stops at opset 20, so the
export writes a placeholder node and :func:`to_group_normalization` turns it into the opset-21 op.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .onnx_groupnorm import with_group_norm_class

FUSED_OPSET = 21  # GroupNormalization-21
EXPORT_OPSET = 20  # the newest opset torch.onnx.export(dynamo=False) writes
PLACEHOLDER_DOMAIN = "cheartflow"
PLACEHOLDER_OP = "GroupNorm"
# Ops whose opset-21 version only adds element types (int4/uint4) or optional attributes with the old
# behaviour as default: a graph of them means the same at opset 20 and 21.
_SAME_MEANING_AT_21 = {"Cast", "CastLike", "Constant", "ConstantOfShape", "Flatten", "Identity", "If", "Loop", "Pad",
                       "Reshape", "Scan", "Shape", "Size", "Squeeze", "Transpose", "Unsqueeze"}


def fused_group_norms(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with every nn.GroupNorm turned into a :class:`FusedGroupNorm` (same weights);
    export it with :func:`export_options` and finish the graph with :func:`to_group_normalization`."""
    return with_group_norm_class(module, FusedGroupNorm)


class FusedGroupNorm(nn.GroupNorm):
    """nn.GroupNorm that torch.onnx.export writes as one placeholder node (eager runs are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.onnx.is_in_onnx_export():
            return super().forward(x)
        ones = torch.ones(self.num_channels, dtype=x.dtype)
        weight = self.weight if self.affine else ones
        bias = self.bias if self.affine else torch.zeros_like(ones)
        return _GroupNormNode.apply(x, weight, bias, self.num_groups, self.eps)


class _GroupNormNode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int,
                eps: float) -> torch.Tensor:
        return F.group_norm(x, num_groups, weight, bias, eps)

    @staticmethod
    def symbolic(g: Any, x: Any, weight: Any, bias: Any, num_groups: int, eps: float) -> Any:
        out = g.op(f"{PLACEHOLDER_DOMAIN}::{PLACEHOLDER_OP}", x, weight, bias, num_groups_i=num_groups,
                   epsilon_f=eps)
        out.setType(x.type())  # same shape and type as x (the exporter cannot infer a custom op's)
        return out


def export_options() -> dict[str, Any]:
    """Keyword arguments of torch.onnx.export for a module from :func:`fused_group_norms`."""
    return {"opset_version": EXPORT_OPSET, "custom_opsets": {PLACEHOLDER_DOMAIN: 1}}


def to_group_normalization(proto: Any) -> Any:
    """Turn the placeholder nodes of an exported graph into GroupNormalization-21 and the graph into opset 21
    (in place; returns `proto`). Raises ValueError for an op whose meaning changes at opset 21."""
    from onnx import helper

    graph = proto.graph
    for node in graph.node:
        if node.domain == PLACEHOLDER_DOMAIN and node.op_type == PLACEHOLDER_OP:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            fused = helper.make_node("GroupNormalization", list(node.input), list(node.output), name=node.name,
                                     num_groups=attrs["num_groups"], epsilon=attrs["epsilon"])
            node.CopyFrom(fused)
    changed = {n.op_type for n in graph.node if n.domain in ("", "ai.onnx") and _changes_at_21(n.op_type)}
    if changed - _SAME_MEANING_AT_21 - {"GroupNormalization"}:
        raise ValueError(f"ops {sorted(changed - _SAME_MEANING_AT_21)} change meaning between opset "
                         f"{EXPORT_OPSET} and {FUSED_OPSET}; the graph cannot be moved to opset {FUSED_OPSET}")
    imports = [op for op in proto.opset_import if op.domain != PLACEHOLDER_DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(imports)
    for op in proto.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = FUSED_OPSET
    return proto


def _changes_at_21(op_type: str) -> bool:
    from onnx import defs

    return defs.get_schema(op_type, FUSED_OPSET).since_version > EXPORT_OPSET
