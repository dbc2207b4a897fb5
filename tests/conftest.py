"""Shared fixtures: procedural phantoms and a tiny model trained on them (session-scoped, a few seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

RES = 32
QUALITY_SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks" / "quality"
TINY_MODEL = dict(resolution=RES, base_channels=8, channel_mult=(1, 2), attention_levels=(1,), time_embed_dim=32, groups=4)


@pytest.fixture(scope="session")
def phantom_set():
    """(images [N,1,32,32] in [-1,1], labels [N,32,32], edge sketches [N,1,32,32] in [0,1])."""
    from cheartflow_sdk.data.phantom import make_phantom
    from cheartflow_sdk.sketch import canny

    images, labels = make_phantom(96, size=RES, seed=0)
    return images, labels, canny(images)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, phantom_set):
    """A tiny edges model trained for a few dozen steps; quality is irrelevant, only the plumbing."""
    pytest.importorskip("torch")
    from cheartflow_sdk.config import ModelConfig, TrainConfig
    from cheartflow_sdk.training import train

    images, _, sketches = phantom_set
    out = tmp_path_factory.mktemp("tiny_model")
    train(images, sketches, ModelConfig(**TINY_MODEL), TrainConfig(steps=40, batch_size=8, warmup_steps=5, log_every=10),
          out, device="cpu", progress=False)
    return out


@pytest.fixture(scope="session")
def onnx_model(trained_model_dir):
    """The tiny model exported to ONNX (parity-gated)."""
    from cheartflow_sdk.export import export_onnx

    path, _ = export_onnx(trained_model_dir)
    return path


@pytest.fixture()
def model_copy(trained_model_dir, tmp_path):
    """A fresh copy of the tiny model's checkpoint (no engines), to export or tamper with."""
    import shutil

    out = tmp_path / "model"
    out.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(trained_model_dir / name, out / name)
    return out


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def quality_script():
    """Load a script of benchmarks/quality/ (a folder, not a package) as a module: ``quality_script("report")``."""
    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(f"quality_{name}", QUALITY_SCRIPTS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load
