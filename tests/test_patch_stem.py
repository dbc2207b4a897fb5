"""The space-to-depth stem (ModelConfig.patch_size): architecture, training, ONNX export and the engines."""

import json

import numpy as np
import pytest

from cheartflow_sdk.config import ModelConfig, TrainConfig, model_config_from_dict
from cheartflow_sdk.errors import InvalidInputError

torch = pytest.importorskip("torch")

import cheartflow_sdk as cf  # noqa: E402
from cheartflow_sdk.cli.train import PRESETS  # noqa: E402
from cheartflow_sdk.models import build_encoder  # noqa: E402
from cheartflow_sdk.training import train  # noqa: E402

from conftest import TINY_MODEL  # noqa: E402


@pytest.fixture(scope="module")
def patch2_model_dir(phantom_set, tmp_path_factory):
    """A tiny patch-2 edges model trained for a few dozen steps."""
    images, _, sketches = phantom_set
    out = tmp_path_factory.mktemp("patch2")
    train(images, sketches, ModelConfig(**TINY_MODEL, patch_size=2),
          TrainConfig(steps=40, batch_size=8, warmup_steps=5, log_every=5), out, device="cpu", progress=False)
    return out


def test_old_configs_have_no_patch_stem_and_patch2_folds_pixels_into_channels():
    assert model_config_from_dict({}).patch_size == 1
    plain, patched = build_encoder(ModelConfig(**TINY_MODEL)), build_encoder(ModelConfig(**TINY_MODEL, patch_size=2))
    assert plain.net.stem.in_channels == 1 and patched.net.stem.in_channels == 4 and patched.net.out_conv.out_channels == 4
    torch.manual_seed(0)
    torch.nn.init.normal_(patched.net.out_conv.weight, std=0.1)  # a fresh encoder ignores its input (zero output conv)
    x, t = torch.randn(2, 1, 32, 32), torch.full((2,), 0.5)
    with torch.no_grad():
        out = patched.eval()(x, t)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.equal(patched(x, torch.zeros(2)), x)  # E(x, 0) = x stays exact


@pytest.mark.parametrize("kwargs, match", [
    ({"patch_size": 0}, "patch_size must be an int >= 1"),
    ({"patch_size": 1.5}, "patch_size must be an int >= 1"),
    ({"patch_size": 3}, r"divisible by patch_size \* 2\*\*\(levels-1\) = 6"),
])
def test_bad_patch_sizes_are_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        ModelConfig(**{**TINY_MODEL, **kwargs})


def test_small_patch2_preset_costs_the_flops_of_small():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(preset):
        enc = build_encoder(ModelConfig(**PRESETS[preset])).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            enc(torch.zeros(1, 1, 128, 128), torch.ones(1))
        return counter.get_total_flops(), sum(p.numel() for p in enc.parameters())

    (small, small_params), (patched, patched_params) = flops("small"), flops("small-patch2")
    assert abs(patched / small - 1) < 0.05 and patched_params > 3 * small_params


def test_patch2_model_trains_exports_and_matches_on_onnxruntime(patch2_model_dir, phantom_set):
    pytest.importorskip("onnxruntime")
    out = patch2_model_dir
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 8 and np.mean(losses[-3:]) < np.mean(losses[:3])
    path, report = cf.export.export_engine(out, "onnx")
    assert path.is_file() and report.max_abs_error <= 1e-4
    _, _, sketches = phantom_set
    on_torch = cf.load_pipeline(out, backend="torch").synthesize(sketches[:4], steps=2, seed=5)
    on_ort = cf.load_pipeline(out, backend="onnxruntime").synthesize(sketches[:4], steps=2, seed=5)
    assert on_ort.shape == (4, 1, 32, 32)
    np.testing.assert_allclose(on_ort, on_torch, atol=1e-3)
