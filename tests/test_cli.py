"""`cheartflow train -> export -> synth` end to end on phantoms, through the CLI, and CLI errors."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

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
    assert "choosing checkpoints on" in log and (run / "best" / "model.safetensors").is_file()  # the folder's val split
    splits = json.loads((data / "splits.json").read_text())
    (data / "splits.json").write_text(json.dumps({"train": splits["train"]}))  # a dataset without a val split
    log = _cli("train", "--data", data, "--out", tmp_path / "noval", "--resolution", 32, "--preset", "tiny", "--steps", 2,
               "--batch-size", 4, cwd=tmp_path)
    assert "no usable val split" in log and not (tmp_path / "noval" / "best").exists()
    (data / "splits.json").write_text(json.dumps(splits))
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
    threads = torch.get_num_threads()
    try:
        assert main(["synth", str(src), "--model", str(model), "--out", str(tmp_path / "t"), "--backend", "torch",
                     "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1 and len(list((tmp_path / "t").glob("*.png"))) == 2
    finally:
        torch.set_num_threads(threads)
    assert main(["synth", str(src), "--model", str(model), "--out", str(tmp_path / "z"), "--threads", "0"]) == 2


def test_pack_then_train_from_npz(tmp_path):
    from cheartflow_sdk.config import read_config
    from cheartflow_sdk.data import load_slices
    from cheartflow_sdk.data.phantom import write_phantom_acdc

    write_phantom_acdc(tmp_path / "acdc", n_patients=6, slices_per_volume=3, size=48, seed=1)
    packed = tmp_path / "train.npz"
    assert main(["-q", "pack", "--data", str(tmp_path / "acdc"), "--split", "train", "--resolution", "32", "--out", str(packed)]) == 0
    slices = load_slices(packed)
    assert slices.images.shape[1:] == (1, 32, 32) and len(slices) > 0
    assert main(["-q", "train", "--data", str(packed), "--out", str(tmp_path / "run"), "--resolution", "32",
                 "--preset", "tiny", "--sketch", "labels", "--steps", "2", "--batch-size", "2"]) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file() and not (tmp_path / "run" / "best").exists()
    assert main(["-q", "pack", "--data", str(tmp_path / "acdc"), "--split", "val", "--resolution", "32",
                 "--out", str(tmp_path / "val.npz"), "--per-patient", "2"]) == 0
    val = load_slices(tmp_path / "val.npz")
    assert len(val) == 2 * len(set(val.patients))  # 3 slices x 2 frames per patient, 2 kept
    assert main(["-q", "train", "--data", str(packed), "--val", str(tmp_path / "val.npz"), "--out", str(tmp_path / "run"),
                 "--resolution", "32", "--preset", "tiny", "--sketch", "labels", "--steps", "3", "--batch-size", "2"]) == 0
    record = read_config(tmp_path / "run" / "best")[2]["selected_on_val"]
    assert record["step"] in (2, 3) and record["val_slices"] == len(load_slices(tmp_path / "val.npz"))
    assert main(["-q", "train", "--data", str(packed), "--out", str(tmp_path / "run2"), "--resolution", "64",
                 "--preset", "tiny"]) == 2  # packed at 32 px: a clear error, not a silent resize


def test_train_baseline_cli(tmp_path):
    from cheartflow_sdk.research.baselines import load_baseline
    from cheartflow_sdk.data.phantom import write_phantom_acdc

    write_phantom_acdc(tmp_path / "acdc", n_patients=6, slices_per_volume=2, size=48, seed=2)
    run = tmp_path / "p2p"
    assert main(["-q", "train-baseline", "--kind", "pix2pix", "--data", str(tmp_path / "acdc"), "--out", str(run),
                 "--resolution", "32", "--steps", "2", "--batch-size", "2", "--set", "ngf=8", "--set", "ndf=8"]) == 0
    out = load_baseline(run, device="cpu")(np.zeros((1, 32, 32), np.uint8))
    assert out.shape == (1, 1, 32, 32)
    assert main(["-q", "train-baseline", "--kind", "iddpm", "--data", str(tmp_path / "acdc"), "--out", str(tmp_path / "x"),
                 "--resolution", "32", "--set", "bogus=1"]) == 2


def test_export_formats_and_verify_cli(tmp_path, trained_model_dir, caplog):
    model = tmp_path / "m"
    shutil.copytree(trained_model_dir, model)
    assert main(["export", str(model), "--format", "onnx-fp16"]) == 0
    assert (model / "model.fp16.onnx").is_file()
    caplog.clear()
    caplog.set_level("INFO")
    assert main(["verify", str(model / "model.fp16.onnx")]) == 0
    assert "parity gate passed" in caplog.text
    with pytest.raises(SystemExit):
        main(["export", str(model), "--format", "bogus"])


def test_export_groupnorm_form_cli(tmp_path, trained_model_dir, caplog):
    onnx = pytest.importorskip("onnx")
    model = tmp_path / "m"
    shutil.copytree(trained_model_dir, model)
    caplog.set_level("ERROR")
    assert main(["export", str(model), "--format", "onnx-fp16", "--groupnorm", "fused"]) == 2
    assert "--groupnorm applies to the formats onnx, openvino, openvino-int8" in caplog.text
    out = tmp_path / "fused.onnx"
    assert main(["export", str(model), "--out", str(out), "--groupnorm", "fused", "--no-gate"]) == 0
    proto = onnx.load(str(out))
    assert {p.key: p.value for p in proto.metadata_props}["cheartflow.groupnorm"] == "fused"
    assert "GroupNormalization" in {n.op_type for n in proto.graph.node}


def test_train_seg_then_eval(tmp_path, onnx_model, caplog):
    import json

    from cheartflow_sdk.data.phantom import write_phantom_acdc

    data = tmp_path / "acdc"
    write_phantom_acdc(data, n_patients=6, slices_per_volume=3, size=48, seed=3)
    seg = tmp_path / "seg"
    assert main(["-q", "train-seg", "--data", str(data), "--out", str(seg), "--resolution", "32", "--steps", "3",
                 "--batch-size", "4"]) == 0
    out = tmp_path / "rows.json"
    caplog.set_level("INFO")
    eval_args = ["eval", "--data", str(data), "--split", "train", "--model", str(onnx_model), "--segmenter", str(seg),
                 "--steps", "2", "--t1-sweep", "0.3,0.7", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    assert main(eval_args) == 0
    rows = json.loads(out.read_text())
    ours = [r for r in rows if r["method"].startswith("cHeartFlow")]
    assert [r["nfe"] for r in ours] == [2, 2, 2] and not any(r["synth_cached"] for r in ours)
    assert all(0 <= r["ssim"] <= 1 and r["seg_dice"] is not None for r in ours)
    assert "frechet_seg" in caplog.text
    assert main(eval_args) == 0  # again: every image comes from the cache, the scores are the same
    again = [r for r in json.loads(out.read_text()) if r["method"].startswith("cHeartFlow")]
    assert all(r["synth_cached"] for r in again) and [r["ssim"] for r in again] == [r["ssim"] for r in ours]
