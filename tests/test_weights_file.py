"""Single-file safetensors weights: dtype on disk, fp32 in the module, clear errors for bad files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors import safe_open  # noqa: E402
from torch import nn  # noqa: E402

from cheartflow_sdk.errors import InvalidInputError  # noqa: E402
from cheartflow_sdk.weights_file import load_weights, save_weights  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))  # BatchNorm: an integer buffer too


def test_fp16_on_disk_integer_buffers_kept_and_fp32_after_loading(tmp_path):
    net = _net()
    net[1].num_batches_tracked += 5
    path = save_weights(net, tmp_path / "w.safetensors", fmt="test")
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"format": "test", "dtype": "float16"}
        assert f.get_tensor("0.weight").dtype == torch.float16
        assert f.get_tensor("1.num_batches_tracked").dtype == torch.int64
    back = load_weights(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)), path, tmp_path / "config.json")
    assert back[0].weight.dtype == torch.float32 and int(back[1].num_batches_tracked) == 5
    torch.testing.assert_close(back[0].weight, net[0].weight.half().float(), rtol=0, atol=0)
    exact = load_weights(_net(), save_weights(net, tmp_path / "w32.safetensors", fmt="t", dtype=torch.float32), "c")
    torch.testing.assert_close(exact[0].weight, net[0].weight, rtol=0, atol=0)


def test_unreadable_or_mismatched_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(InvalidInputError, match="bad.safetensors is not a readable safetensors file"):
        load_weights(_net(), bad, "config.json")
    path = save_weights(_net(), tmp_path / "w.safetensors", fmt="test")
    with pytest.raises(InvalidInputError, match=r"w.safetensors does not match the architecture in my/config.json"):
        load_weights(nn.Sequential(nn.Conv2d(1, 8, 3)), path, "my/config.json")
