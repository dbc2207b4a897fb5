"""No silent garbage: every unusual input either does the right thing or fails with a clear error naming what was
expected, in the API and the CLI alike (issue 15, item 3). Most cases run on a stand-in encoder (fast)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk import io as cio
from cheartflow_sdk import sketch as csk
from cheartflow_sdk.config import ModelConfig, model_config_from_dict
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError
from cheartflow_sdk.pipeline import Pipeline
from cheartflow_sdk.validation import as_sketch_batch

from conftest import RES, TINY_MODEL


class _Echo:
    """A stand-in encoder: returns its input (so the image is a function of the sketch only)."""

    name = "echo"

    def __init__(self, kind="edges", **cfg):
        self.config = ModelConfig(**{**TINY_MODEL, "sketch_kind": kind, **cfg})

    def __call__(self, x, t):
        return np.asarray(x, np.float32).copy()


def _pipe(kind="edges", **cfg) -> Pipeline:
    return Pipeline(_Echo(kind, **cfg), Path("echo"))


def _edges(n=2, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, RES, RES), np.float32)
    for i in range(n):
        r = int(rng.integers(5, 12))
        cv2.circle(x[i, 0], (RES // 2, RES // 2), r, 1.0, 1)
    return x


def _labels(n=2):
    lab = np.zeros((n, RES, RES), np.uint8)
    lab[:, 6:26, 6:26] = 1
    lab[:, 10:22, 10:22] = 2
    lab[:, 13:19, 13:19] = 3
    return lab


# ------------------------------------------------------------------------------------ integer rule


def test_integer_edge_map_0_1_is_read_as_edges():
    edges = _edges(1)[0, 0].astype(np.int64)  # 0/1 ints
    np.testing.assert_array_equal(as_sketch_batch(edges, kind="edges")[0, 0], edges.astype(np.float32))
    np.testing.assert_array_equal(as_sketch_batch(edges)[0, 0], edges.astype(np.float32))  # kind unknown: 0/1
    np.testing.assert_array_equal(as_sketch_batch(edges.astype(bool))[0, 0], edges.astype(np.float32))
    out = _pipe().synthesize(edges.astype(np.uint8), sketch_kind="edges")  # echo: the image is the sketch
    np.testing.assert_allclose(out[0, 0], edges, atol=1e-6)


def test_integer_label_map_0_3_is_read_as_labels():
    lab = _labels(1)[0]
    want = lab.astype(np.float32) / 3
    for dtype in (np.uint8, np.int16, np.int64):
        np.testing.assert_allclose(as_sketch_batch(lab.astype(dtype), kind="labels")[0, 0], want, atol=1e-7)
        np.testing.assert_allclose(as_sketch_batch(lab.astype(dtype))[0, 0], want, atol=1e-7)
    np.testing.assert_allclose(_pipe("labels").synthesize(lab)[0, 0], want, atol=1e-6)
    only_rv = (lab > 0).astype(np.uint8)  # a label map using only labels 0/1, for a labels model: still labels
    np.testing.assert_allclose(as_sketch_batch(only_rv, kind="labels")[0, 0], only_rv / 3, atol=1e-7)


def test_label_map_for_an_edges_model_is_refused():
    with pytest.raises(ModelMismatchError, match=r"label map .* the model takes edge sketches"):
        _pipe("edges").synthesize(_labels(1))


def test_integer_values_above_255_and_negative_are_refused():
    with pytest.raises(InvalidInputError, match=r"0/1 edges, 0\.\.3 labels or 0\.\.255 .*min -1, max 4"):
        as_sketch_batch(np.array([[-1, 4]], np.int32))
    with pytest.raises(InvalidInputError, match=r"uint16 0\.\.65535.*max 300"):
        as_sketch_batch(np.array([[0, 300]], np.int32))
    np.testing.assert_allclose(as_sketch_batch(np.array([[0, 300]], np.uint16))[0, 0], [[0, 300 / 65535]], atol=1e-7)


def test_16_bit_png_within_0_255_is_read_as_8_bit(tmp_path):
    img = np.zeros((RES, RES), np.uint16)
    cv2.circle(img, (16, 16), 8, 255, 1)
    path = tmp_path / "a16.png"
    assert cv2.imwrite(str(path), img)
    x, _ = cio.read_sketches(path)
    np.testing.assert_allclose(x[0, 0], img / 255.0, atol=1e-7)  # not img / 65535 (near black)


def test_png_0_1_edge_map_and_0_3_label_map(tmp_path):
    edges = _edges(1)[0, 0].astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "e.png"), edges)
    x, _ = cio.read_sketches(tmp_path / "e.png", kind="edges")
    np.testing.assert_array_equal(x[0, 0], edges)
    lab = _labels(1)[0]
    assert cv2.imwrite(str(tmp_path / "l.png"), lab)
    x, _ = cio.read_sketches(tmp_path / "l.png", kind="labels")
    np.testing.assert_allclose(x[0, 0], lab / 3, atol=1e-7)


def test_nifti_label_map_with_only_some_labels_is_still_labels(tmp_path):
    nib = pytest.importorskip("nibabel")
    lab = np.zeros((RES, RES, 2), np.int16)
    lab[8:24, 8:24] = 1  # labels 0/1 only
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "lab.nii.gz"))
    x, _ = cio.read_sketches(tmp_path / "lab.nii.gz")  # NIfTI integer maps are label maps
    np.testing.assert_allclose(x[0, 0], lab[:, :, 0] / 3, atol=1e-7)
    x, _ = cio.read_sketches(tmp_path / "lab.nii.gz", kind="edges")  # for an edges model: a 0/1 map
    np.testing.assert_array_equal(x[0, 0], lab[:, :, 0])


# ------------------------------------------------------------------------------------ drawings and kinds


def test_mostly_bright_sketch_is_refused_with_the_drawing_hint():
    paper = np.ones((1, 1, RES, RES), np.float32)
    cv2.circle(paper[0, 0], (16, 16), 8, 0.0, 2)  # dark lines on light paper
    with pytest.raises(InvalidInputError, match=r"bright.*normalize_drawing.*--drawing"):
        _pipe().synthesize(paper)


def test_drawing_dark_coloured_thick_lines_keep_the_aspect_ratio():
    paper = np.full((60, 120, 3), 255, np.uint8)
    cv2.circle(paper, (60, 30), 20, (255, 200, 0), 5)  # a thick yellow-ish (RGB) circle on white paper
    out = csk.normalize_drawing(paper, "edges", size=RES)
    assert out.shape == (1, 1, RES, RES) and set(np.unique(out)) <= {0.0, 1.0}
    ys, xs = np.nonzero(out[0, 0])
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert abs(height - width) <= 2  # a circle stays a circle (padded, not stretched)
    assert ys.min() >= RES // 4 - 1 and ys.max() <= 3 * RES // 4  # padding above and below the 2:1 drawing
    eroded = cv2.erode(out[0, 0].astype(np.uint8), np.ones((2, 2), np.uint8))
    assert eroded.sum() < 0.1 * out.sum()  # thick lines thinned to one pixel
    assert _pipe().synthesize(out).shape == (1, 1, RES, RES)  # and accepted by an edges model


def test_cli_drawing_flag(tmp_path, trained_model_dir):
    from cheartflow_sdk.cli import main

    paper = np.full((40, 64, 3), 255, np.uint8)
    cv2.circle(paper, (32, 20), 12, (0, 0, 200), 3)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "drawn.png"), paper)
    assert main(["-q", "synth", str(tmp_path / "in"), "--model", str(trained_model_dir), "--out", str(tmp_path / "a")]) == 2
    assert main(["-q", "synth", str(tmp_path / "in"), "--model", str(trained_model_dir), "--out", str(tmp_path / "b"),
                 "--drawing"]) == 0
    assert cv2.imread(str(tmp_path / "b" / "drawn_synth.png"), cv2.IMREAD_UNCHANGED).shape == (RES, RES)


def test_label_sketch_for_an_edges_model_is_detected():
    lab = _labels(2).astype(np.float32)[:, None] / 3
    with pytest.raises(ModelMismatchError, match=r"looks like a label sketch.*takes edge sketches"):
        _pipe("edges").synthesize(lab)
    _pipe("edges").synthesize(_edges(2))  # a real edge sketch passes


def test_edge_sketch_for_a_labels_model_is_detected():
    with pytest.raises(ModelMismatchError, match=r"looks like an edge sketch.*takes label sketches"):
        _pipe("labels").synthesize(_edges(2))
    _pipe("labels").synthesize(_labels(2).astype(np.float32)[:, None] / 3)  # a real label sketch passes
    _pipe("labels").synthesize(_edges(2), sketch_kind="labels")  # declared: the caller knows


def test_load_pipeline_checks_the_sketch_kind(trained_model_dir):
    with pytest.raises(ModelMismatchError, match=r"trained on 'edges' sketches but sketch_kind='labels' was asked for"):
        cf.load_pipeline(trained_model_dir, backend="torch", sketch_kind="labels")
    with pytest.raises(InvalidInputError, match=r"sketch_kind: expected 'edges', 'labels' or None"):
        cf.load_pipeline(trained_model_dir, backend="torch", sketch_kind="edge")
    assert cf.load_pipeline(trained_model_dir, backend="torch", sketch_kind="edges").config.sketch_kind == "edges"


# ------------------------------------------------------------------------------------ devices, steps, schedule


def test_cuda_without_a_gpu_is_an_error(trained_model_dir, monkeypatch):
    from cheartflow_sdk import pipeline

    monkeypatch.setattr(pipeline, "_gpu_usable", lambda: False)
    with pytest.raises(ModelMismatchError, match=r"device='cuda' asks for a CUDA GPU but none is usable"):
        cf.load_pipeline(trained_model_dir, backend="torch", device="cuda")
    with pytest.raises(InvalidInputError, match=r"device: expected one of auto, cpu, cuda or 'cuda:N'"):
        cf.load_pipeline(trained_model_dir, device="gpu")


def test_cli_device_accepts_only_known_values(capsys):
    from cheartflow_sdk.cli import main

    with pytest.raises(SystemExit) as e:
        main(["synth", "x", "--out", "y", "--device", "gpu"])
    assert e.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err


def test_steps_above_the_validated_count_need_an_explicit_override():
    pipe = _pipe(max_steps=2)
    x = _edges(1)
    with pytest.raises(InvalidInputError, match=r"validated for at most 2 steps.*allow_unvalidated_steps=True"):
        pipe.synthesize(x, steps=3)
    assert pipe.synthesize(x, steps=3, allow_unvalidated_steps=True).shape == (1, 1, RES, RES)
    with pytest.raises(InvalidInputError, match="validated for at most 2 steps"):
        next(pipe.stream([x], steps=4))


def test_old_configs_get_the_legacy_max_steps():
    from cheartflow_sdk.config import LEGACY_MODEL_FIELDS

    old = {k: v for k, v in ModelConfig(**TINY_MODEL).__dict__.items() if k != "max_steps"}
    assert model_config_from_dict(old).max_steps == LEGACY_MODEL_FIELDS["max_steps"]
    assert ModelConfig().max_steps == 8


def test_string_steps_and_bad_schedules_are_clear_errors():
    pipe = _pipe()
    with pytest.raises(InvalidInputError, match=r"steps: expected an int >= 1.*got '2'"):
        pipe.synthesize(_edges(1), steps="2")
    with pytest.raises(InvalidInputError, match=r"schedule: expected a sequence of 1 re-noise times"):
        pipe.synthesize(_edges(1), steps=2, schedule="abc")


def test_cli_bad_schedule_and_steps_exit_2_without_traceback(tmp_path, trained_model_dir, caplog):
    from cheartflow_sdk.cli import main

    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "s.npy", _edges(1))
    args = ["synth", str(tmp_path / "in"), "--model", str(trained_model_dir), "--out", str(tmp_path / "o")]
    assert main(args + ["--steps", "2", "--schedule", "abc"]) == 2
    assert "--schedule: expected comma-separated re-noise times" in caplog.text
    assert main(args + ["--steps", "2", "--schedule", "0.5,0.3"]) == 2
    assert "schedule: expected 1 re-noise times" in caplog.text
    assert main(args + ["--steps", "12"]) == 2
    assert "--allow-unvalidated-steps" in caplog.text
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())  # nothing written


# ------------------------------------------------------------------------------------ output paths


@pytest.fixture()
def synth_args(tmp_path, trained_model_dir):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "s.npy", _edges(2))

    def make(out, *extra):
        return ["-q", "synth", str(tmp_path / "in"), "--model", str(trained_model_dir), "--out", str(out), *extra]

    return make


def _fail_before_work(monkeypatch):
    """Make any synthesis an error, so that a check 'before the work' is proven to come first."""
    def boom(*a, **k):
        raise AssertionError("synthesis ran before the output checks")

    monkeypatch.setattr(Pipeline, "synthesize", boom)


def test_out_that_is_a_file_fails_before_the_work(tmp_path, synth_args, monkeypatch, caplog):
    from cheartflow_sdk.cli import main

    (tmp_path / "file").write_text("x")
    _fail_before_work(monkeypatch)
    assert main(synth_args(tmp_path / "file")) == 2
    assert "exists and is a file; expected a folder" in caplog.text


def test_out_equal_to_the_input_folder_fails_before_the_work(tmp_path, synth_args, monkeypatch, caplog):
    from cheartflow_sdk.cli import main

    _fail_before_work(monkeypatch)
    assert main(synth_args(tmp_path / "in")) == 2
    assert "is the input folder; expected another folder" in caplog.text


def test_read_only_out_fails_before_the_work(tmp_path, synth_args, monkeypatch, caplog):
    from cheartflow_sdk.cli import main

    _fail_before_work(monkeypatch)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    import tempfile

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # a read-only folder (root ignores chmod)
    assert main(synth_args(tmp_path / "ro")) == 2
    err = caplog.text
    assert "cannot write there" in err and "expected a writable folder" in err


def test_output_name_that_is_a_folder_fails_before_the_work(tmp_path, synth_args, monkeypatch, caplog):
    from cheartflow_sdk.cli import main

    (tmp_path / "o" / "s_i000_synth.png").mkdir(parents=True)
    _fail_before_work(monkeypatch)
    assert main(synth_args(tmp_path / "o", "--overwrite")) == 2
    assert "is a folder; expected a file name that is free" in caplog.text


def test_existing_outputs_need_overwrite(tmp_path, synth_args, caplog):
    from cheartflow_sdk.cli import main

    assert main(synth_args(tmp_path / "o")) == 0
    first = (tmp_path / "o" / "s_i000_synth.png").read_bytes()
    assert main(synth_args(tmp_path / "o")) == 2
    err = caplog.text
    assert "already exist" in err and "pass --overwrite" in err
    assert main(synth_args(tmp_path / "o", "--overwrite")) == 0
    assert (tmp_path / "o" / "s_i000_synth.png").read_bytes() == first


def test_grid_is_capped_and_help_shows_defaults(tmp_path, synth_args, caplog):
    from cheartflow_sdk.cli import main, make_parser

    assert main(synth_args(tmp_path / "o", "--grid", "--grid-rows", "1")) == 0
    grid = cv2.imread(str(tmp_path / "o" / "grid.png"), cv2.IMREAD_UNCHANGED)
    assert grid.shape[0] < 2 * RES  # one row of tiles (plus the title strip), not two
    sub = make_parser()._subparsers._group_actions[0].choices["synth"]
    text = sub.format_help()
    assert "(default: 16)" in text and "(default: 1)" in text and "a sketch file" in text


def test_a_files_image_does_not_depend_on_the_other_files_in_its_folder(tmp_path, trained_model_dir):
    from cheartflow_sdk.cli import main

    sk = _edges(3, seed=4)
    for folder, files in (("a", [0]), ("b", [1, 0, 2])):
        (tmp_path / folder).mkdir()
        for i in files:
            cv2.imwrite(str(tmp_path / folder / f"s{i}.png"), (sk[i, 0] * 255).astype(np.uint8))
        assert main(["-q", "synth", str(tmp_path / folder), "--model", str(trained_model_dir), "--out",
                     str(tmp_path / f"out_{folder}"), "--steps", "2"]) == 0
    a = cv2.imread(str(tmp_path / "out_a" / "s0_synth.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "out_b" / "s0_synth.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # same noise; at most float rounding of the batch
