"""The sketch as a second input channel (ModelConfig.sketch_condition): training, val scoring, the torch path."""

import json

import numpy as np
import pytest

from cheartflow_sdk.config import ModelConfig, TrainConfig, model_config_from_dict
from cheartflow_sdk.errors import InvalidInputError, ModelNotAvailableError

torch = pytest.importorskip("torch")

import cheartflow_sdk as cf  # noqa: E402
from cheartflow_sdk.models import build_encoder  # noqa: E402
from cheartflow_sdk.training import Trainer, data_scales  # noqa: E402

from conftest import TINY_MODEL  # noqa: E402


@pytest.fixture(scope="module")
def conditioned_run(phantom_set, tmp_path_factory):
    """A tiny sketch-conditioned edges model trained (with val scoring) for a few dozen steps."""
    images, _, sketches = phantom_set
    out = tmp_path_factory.mktemp("conditioned")
    model_cfg = data_scales(ModelConfig(**TINY_MODEL, sketch_condition=True), images, sketches)
    cfg = TrainConfig(steps=60, batch_size=16, lr=2e-3, warmup_steps=5, ema_decay=0.9, gap_stage_steps=40,
                      log_every=10, checkpoint_every=30, val_slices=16)
    trainer = Trainer(images, sketches, model_cfg, cfg, out, device="cpu", val=(images[:16], sketches[:16]))
    results = trainer.run(progress=False)
    return out, results


def test_old_configs_are_unconditioned_and_the_stem_takes_two_channels():
    assert model_config_from_dict({}).sketch_condition is False
    plain, conditioned = build_encoder(ModelConfig(**TINY_MODEL)), build_encoder(ModelConfig(**TINY_MODEL, sketch_condition=True))
    assert plain.net.stem.in_channels == 1 and conditioned.net.stem.in_channels == 2


def test_conditioned_encoder_needs_the_sketch_and_uses_it():
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(**TINY_MODEL, sketch_condition=True)).eval()
    torch.nn.init.normal_(enc.net.out_conv.weight, std=0.1)  # a fresh encoder ignores its input (zero output conv)
    x, t = torch.zeros(2, 1, 32, 32), torch.full((2,), 0.5)
    with pytest.raises(InvalidInputError, match="sketch-conditioned"):
        enc(x, t)
    with pytest.raises(InvalidInputError, match="shaped like x"):
        enc(x, t, torch.zeros(2, 1, 16, 16))
    with torch.no_grad():
        a, b = enc(x, t, -torch.ones_like(x)), enc(x, t, torch.ones_like(x))
    assert not torch.allclose(a, b)  # the sketch channel reaches the output
    assert torch.equal(enc(x, torch.zeros(2), torch.ones_like(x)), x)  # E(x, 0) = x stays exact


def test_conditioned_training_lowers_the_loss_and_scores_val(conditioned_run):
    out, results = conditioned_run
    assert np.mean([r.loss for r in results[-10:]]) < 0.7 * np.mean([r.loss for r in results[:10]])
    val = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "val_ssim" in line]
    assert [r["step"] for r in val] == [30, 60] and all(np.isfinite(r["val_ssim"]) for r in val)
    assert (out / "best" / "model.safetensors").is_file()


def test_conditioned_model_synthesizes_on_torch_and_refuses_engines(conditioned_run, phantom_set):
    out, _ = conditioned_run
    _, _, sketches = phantom_set
    pipe = cf.load_pipeline(out, backend="torch")
    one, two = pipe.synthesize(sketches[:4], steps=1), pipe.synthesize(sketches[:4], steps=2, seed=3)
    assert one.shape == two.shape == (4, 1, 32, 32) and np.isfinite(two).all() and not np.allclose(one, two)
    # the runner passes each chunk's own sketches: a batch equals its samples one by one
    alone = np.concatenate([pipe.synthesize(sketches[i:i + 1], steps=2, seed=3) for i in range(4)])
    np.testing.assert_allclose(two, alone, atol=1e-5)
    assert cf.load_pipeline(out).backend == "torch"  # auto: no engine, so the checkpoint
    with pytest.raises(InvalidInputError, match="cannot be exported"):
        cf.export.export_engine(out, "onnx")
    (out / "model.onnx").write_bytes(b"not an engine")  # an engine beside a conditioned model is refused first
    try:
        with pytest.raises(ModelNotAvailableError, match="backend='torch' only"):
            cf.load_pipeline(out, backend="onnxruntime")
    finally:
        (out / "model.onnx").unlink()
