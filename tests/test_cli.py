"""`cheartflow train -> export -> synth` end to end on phantoms, through the CLI, and CLI errors."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from cheartflow_sdk import io  # noqa: E402
from cheartflow_sdk.cli import main  # noqa: E402

CLI = [sys.executable, "-m", "cheartflow_sdk.cli"]


def _cli(*args, cwd):
    proc = subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.slow
def test_train_export_synth_end_to_end(tmp_path):
    from cheartflow_sdk.data.phantom import make_phantom, write_phantom_acdc
    from cheartflow_sdk.sketch import canny

    data = tmp_path / "acdc"
    write_phantom_acdc(data, n_patients=6, slices_per_volume=3, size=48, seed=0)
    run = tmp_path / "run"
    log = _cli("train", "--data", data, "--out", run, "--resolution", 32, "--preset", "tiny", "--steps", 20,
               "--batch-size", 4, "--set", "log_every=5", cwd=tmp_path)
    assert "training on" in log and (run / "model.safetensors").is_file() and (run / "metrics.jsonl").is_file()
    log = _cli("export", run, cwd=tmp_path)
    assert "parity gate passed" in log and (run / "model.onnx").is_file()

    sketch_dir = tmp_path / "sketches"
    io.write_pngs(sketch_dir, canny(make_phantom(3, size=32, seed=5)[0]), ["a", "b", "c"])
    np.save(sketch_dir / "d.npy", np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    log = _cli("synth", sketch_dir, "--model", run / "model.onnx", "--out", out, "--steps", 2, "--grid", cwd=tmp_path)
    assert "onnxruntime-cpu" in log
    assert sorted(p.name for p in out.iterdir()) == ["a_synth.png", "b_synth.png", "c_synth.png", "d_synth.png", "grid.png"]
    images, _ = io.read_sketches(out / "a_synth.png")
    assert images.shape == (1, 1, 32, 32)


def test_cli_errors_are_clear(tmp_path, trained_model_dir, caplog):
    def fails_with(args, *phrases):
        caplog.clear()
        assert main([str(a) for a in args]) == 2
        for phrase in phrases:
            assert phrase in caplog.text

    model, out = trained_model_dir, tmp_path / "o"
    empty = tmp_path / "empty"
    empty.mkdir()
    fails_with(["synth", empty, "--model", model, "--out", out], "no sketch files", ".png")
    big = tmp_path / "big"
    io.write_pngs(big, np.zeros((1, 1, 64, 64), np.float32), ["x"])
    fails_with(["synth", big, "--model", model, "--out", out], "32x32", "64x64")
    fails_with(["synth", big / "x.png", "--model", tmp_path / "nomodel", "--out", out], "does not exist")
    small = tmp_path / "small.npy"
    np.save(small, np.zeros((32, 32), np.uint8))
    fails_with(["synth", small, "--model", model, "--out", out, "--sketch-kind", "labels"], "trained on 'edges'")
    fails_with(["train", "--data", tmp_path / "missing", "--out", tmp_path / "r", "--resolution", 32, "--preset", "tiny"],
               "missing")
    fails_with(["train", "--data", tmp_path, "--out", tmp_path / "r", "--set", "nonsense=1"], "FIELD=VALUE")
    assert not out.exists()  # failed runs write nothing


def test_synth_on_model_folder_with_torch_backend(tmp_path, trained_model_dir):
    model = tmp_path / "m"
    shutil.copytree(trained_model_dir, model)
    (model / "model.onnx").unlink(missing_ok=True)
    src = tmp_path / "s.npy"
    np.save(src, np.zeros((2, 32, 32), np.uint8))
    assert main(["synth", str(src), "--model", str(model), "--out", str(tmp_path / "o"), "--backend", "torch"]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 2
