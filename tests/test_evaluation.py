"""Evaluation of methods on phantom slices (fake methods and a tiny trained model) and the quality report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cheartflow_sdk.data import SliceSet
from cheartflow_sdk.errors import InvalidInputError
from cheartflow_sdk.research.evaluation import (
    METRIC_KEYS,
    Method,
    patient_average,
    patient_means,
    run_method,
)

RES = 32


def test_patient_averaging_hand_example():
    values = np.array([1.0, 3.0, 10.0, np.nan, 4.0, 6.0])
    patients = ["p1", "p1", "p2", "p2", "p3", "p3"]
    means = patient_means(values, patients)
    assert means == {"p1": 2.0, "p2": 10.0, "p3": 5.0}
    mean, std = patient_average(values, patients)
    assert mean == pytest.approx((2 + 10 + 5) / 3)  # each patient weighs the same, not each slice
    assert std == pytest.approx(np.std([2.0, 10.0, 5.0]))
    assert patient_average(np.array([np.inf, np.inf]), ["a", "b"]) == (math.inf, 0.0)
    with pytest.raises(InvalidInputError, match="one value per slice"):
        patient_means(values[:3], patients)


@pytest.fixture(scope="module")
def slices():
    from cheartflow_sdk.data.phantom import make_phantom

    images, labels = make_phantom(24, size=RES, seed=3)
    patients = [f"p{i // 6}" for i in range(24)]  # 4 patients, 6 slices each
    return SliceSet(images, labels, patients, ["ED"] * 24, list(range(24)))


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory):
    pytest.importorskip("torch")
    from cheartflow_sdk.data.phantom import make_phantom
    from cheartflow_sdk.research.segmentation import (
        SegmenterConfig,
        SegTrainConfig,
        train_segmenter,
    )

    images, labels = make_phantom(64, size=RES, seed=0)
    out = tmp_path_factory.mktemp("eval_segmenter")
    seg, _ = train_segmenter(images, labels, SegmenterConfig(resolution=RES, base_channels=8, channel_mult=(1, 2, 4), groups=4),
                             SegTrainConfig(steps=12, batch_size=8, lr=5e-3, warmup_steps=2, log_every=100), out,
                             device="cpu", progress=False)
    return seg, out


def test_identity_method_gives_perfect_scores(slices, tiny_segmenter):
    from cheartflow_sdk.research.evaluation import Evaluator

    seg, _ = tiny_segmenter
    ev = Evaluator(slices, segmenter=seg, n_samples=3)
    res = ev.evaluate_images(ev.real01.copy(), "identity", "edges", 1)
    row = res.row
    assert row["ssim"] == pytest.approx(1.0) and math.isinf(row["psnr"])
    assert row["frechet_seg"] == pytest.approx(0.0, abs=1e-6)
    ref = ev.reference_row()
    assert row["seg_dice"] == pytest.approx(ref["seg_dice"])  # the same labels as on the real images
    assert {"method", "sketch", "nfe", "split", *METRIC_KEYS} <= set(row)
    assert row["fid"] is None and row["lpips"] is None
    assert row["n_slices"] == 24 and row["n_patients"] == 4 and row["split"] == "test"
    assert res.samples.shape == (3, 1, RES, RES) and len(set(np.asarray(slices.patients)[ev.sample_indices])) == 3
    assert set(res.per_patient["ssim"]) == {"p0", "p1", "p2", "p3"}


def test_degraded_method_scores_lower_and_is_called_with_the_sketches(slices, tiny_segmenter):
    from cheartflow_sdk.research.evaluation import Evaluator

    seg, _ = tiny_segmenter
    ev = Evaluator(slices, segmenter=seg, method_batch_size=5)
    real01 = ev.real01
    calls = []

    def blurry(sketches):
        calls.append(len(sketches))
        start = sum(calls[:-1])
        img = real01[start:start + len(sketches)]
        return 0.5 * img + 0.25  # contrast halved: same anatomy, other intensities

    res = ev.evaluate(blurry, "half-contrast", "labels", 3, note="x")
    assert calls == [5, 5, 5, 5, 4]
    row = res.row
    assert 0 < row["ssim"] < 1 and np.isfinite(row["psnr"]) and row["psnr"] > 0
    assert row["frechet_seg"] > 0 and row["nfe"] == 3 and row["note"] == "x" and row["synth_seconds"] >= 0
    np.testing.assert_allclose(row["ssim"], np.mean(list(res.per_patient["ssim"].values())))
    np.testing.assert_allclose(ev.sketches("labels"), np.asarray(slices.labels, np.float32)[:, None] / 3)


def test_methods_with_wrong_output_are_rejected(slices):
    sketches = np.zeros((4, 1, RES, RES), np.float32)
    with pytest.raises(InvalidInputError, match=r"\(x \+ 1\) / 2"):
        run_method(lambda s: s * 2 - 1.5, sketches)
    with pytest.raises(InvalidInputError, match=r"\[2, 1, 32, 32\]"):
        run_method(lambda s: s[:, :, :16], sketches, batch_size=2)
    out = run_method(lambda s: s + 1.02, sketches)  # within the slack: clipped
    assert out.max() == 1.0


def test_pipeline_methods_and_the_t1_sweep(slices, trained_model_dir):
    from cheartflow_sdk.research.evaluation import (
        Evaluator,
        evaluate_methods,
        pipeline_method,
        sweep_t1,
    )
    from cheartflow_sdk.pipeline import load_pipeline

    pipe = load_pipeline(trained_model_dir, backend="torch", device="cpu")
    ev = Evaluator(slices)  # no segmenter: SSIM/PSNR only
    results = evaluate_methods(ev, [Method("cHeartFlow 1-step", "edges", 1, pipeline_method(pipe, 1))])
    direct = pipe.synthesize(ev.sketches("edges"), steps=1)
    expected = ev.evaluate_images(direct, "x", "edges", 1).row
    assert results[0].row["ssim"] == pytest.approx(expected["ssim"]) and results[0].row["seg_dice"] is None
    sweep = sweep_t1(ev, lambda t1: pipeline_method(pipe, 2, (t1,), seed=1), "edges", (0.2, 0.8), sweep="t1")
    assert [r.row["t1"] for r in sweep] == [0.2, 0.8] and all(r.row["nfe"] == 2 and r.row["sweep"] == "t1" for r in sweep)
    with pytest.raises(InvalidInputError, match=r"\(0, 1\)"):
        sweep_t1(ev, lambda t1: pipeline_method(pipe, 2, (t1,)), "edges", (1.0,))


# ----------------------------------------------------------------------------- report


def _fake_rows():
    rows = []
    for kind in ("edges", "labels"):
        rows += [
            {"method": "pix2pix", "sketch": kind, "nfe": 1, "split": "test", "ssim": 0.51, "psnr": 19.6, "seg_dice": 0.6,
             "frechet_seg": 40.0, "fid": None, "lpips": None},
            {"method": "iDDPM", "sketch": kind, "nfe": 1000, "split": "test", "ssim": 0.79, "psnr": 25.1, "seg_dice": 0.8,
             "frechet_seg": 5.0, "fid": 52.4, "lpips": 0.0558},
            {"method": "cHeartFlow 1-step", "sketch": kind, "nfe": 1, "split": "test", "ssim": 0.85, "psnr": float("inf"),
             "seg_dice": 0.85, "frechet_seg": 3.0, "fid": float("nan"), "lpips": None},
        ]
        rows += [{"method": "cHeartFlow 2-step", "sketch": kind, "nfe": 2, "split": "test", "sweep": "t1", "t1": t,
                  "ssim": 0.85 - 0.1 * t, "psnr": 28 - t, "seg_dice": 0.86 - 0.05 * t, "frechet_seg": 3.0 - 2 * t,
                  "fid": None, "lpips": None} for t in (0.2, 0.5, 0.8)]
    rows.append({"method": "real images (reference)", "sketch": None, "nfe": 0, "split": "test", "ssim": None, "psnr": None,
                 "seg_dice": 0.9, "frechet_seg": None, "fid": None, "lpips": None})
    return rows


def test_report_writes_table_json_grid_and_curve(tmp_path, quality_script):
    cv2 = pytest.importorskip("cv2")
    report = quality_script("report")
    rows = _fake_rows()
    rng = np.random.default_rng(0)
    grid_cols = [("pix2pix", rng.random((3, 1, RES, RES))), ("1-step", rng.random((3, 1, RES, RES)))]
    grids = {"edges": (rng.random((3, 1, RES, RES)), rng.random((3, 1, RES, RES)), grid_cols)}
    written = report.write_report(tmp_path, rows, grids, notes=["iDDPM 200 left out: no model"],
                                  provenance={"device": "test CPU", "versions": {"numpy": np.__version__}})
    assert set(written) == {"grid_edges", "t1_curve", "results", "table"}
    data = json.loads((tmp_path / "results.json").read_text())  # strict JSON: no NaN/Infinity tokens
    assert isinstance(data, list) and len(data) == len(rows)
    assert data[2]["psnr"] == "inf" and data[2]["fid"] is None
    assert all({"method", "sketch", "nfe", "split", "ssim", "psnr", "seg_dice", "frechet_seg"} <= set(r) for r in data)
    table = (tmp_path / "table.md").read_text()
    assert "| Method | NFE | Frechet-seg ↓ | SSIM ↑ | PSNR ↑ | seg-Dice ↑ | FID ↓ | LPIPS ↓ |" in table
    assert "## Edge sketches (Canny)" in table and "## Label sketches (label maps)" in table
    assert "| cHeartFlow 1-step | 1 | **3.00** | **0.8500** | **∞** | **0.8500** | – | – |" in table
    assert "| real images (reference) | – | – | – | – | 0.9000 | – | – |" in table
    assert "iDDPM 200 left out: no model" in table and "test CPU" in table
    assert "| edges | 0.50 |" in table  # the sweep
    grid = cv2.imread(str(tmp_path / "grid_edges.png"), cv2.IMREAD_UNCHANGED)
    assert grid.ndim == 2 and grid.shape[1] == 4 * RES + 5 * 2  # sketch | real | 2 methods, 2 px padding
    curve = cv2.imread(str(tmp_path / "t1_curve.png"), cv2.IMREAD_COLOR)
    assert curve.shape == (420, 2 * 560, 3)


def test_report_without_optional_metrics_or_sweep(tmp_path, quality_script):
    report = quality_script("report")
    rows = [r for r in _fake_rows() if r.get("sweep") is None]
    for r in rows:
        r["fid"] = r["lpips"] = None
    written = report.write_report(tmp_path, rows)
    assert set(written) == {"results", "table"}
    table = (tmp_path / "table.md").read_text()
    assert "FID" not in table and "LPIPS" not in table and "t_1" not in table


def test_report_main_end_to_end_on_phantom_acdc(tmp_path, trained_model_dir, tiny_segmenter, quality_script):
    cv2 = pytest.importorskip("cv2")
    from cheartflow_sdk.data import write_phantom_acdc

    report = quality_script("report")
    _, seg_dir = tiny_segmenter
    data = tmp_path / "acdc"
    write_phantom_acdc(data, n_patients=4, slices_per_volume=2, size=40, seed=5,
                       splits={"train": ["patient001"], "test": ["patient002", "patient003", "patient004"]})
    out = tmp_path / "report"
    args = ["--data", str(data), "--resolution", str(RES), "--model", f"edges={trained_model_dir}",
            "--segmenter", str(seg_dir), "--t1", "0.3,0.7", "--device", "cpu", "--samples", "2",
            "--baseline", str(tmp_path / "no_such_run:200"), "--cache", str(tmp_path / "cache"), "--out", str(out)]
    assert report.main(args) == 0
    rows = json.loads((out / "results.json").read_text())
    assert report.main(args) == 0  # the rerun scores the cached images: the same numbers
    rerun = json.loads((out / "results.json").read_text())
    synthesized = [r for r in rerun if r["nfe"] > 0]
    assert len(synthesized) == 4 and all(r["synth_cached"] for r in synthesized)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "synth_cached"} for r in rs]  # noqa: E731
    assert strip(rerun) == strip(rows)
    methods = [(r["method"], r["sketch"], r.get("t1")) for r in rows]
    assert ("cHeartFlow 1-step", "edges", None) in methods and ("cHeartFlow 2-step", "edges", 0.5) in methods
    assert [r["t1"] for r in rows if r.get("sweep") == "t1"] == [0.3, 0.7]
    assert rows[-3]["method"] == "real images (reference)"
    assert all(r["split"] == "test" and r["n_patients"] == 3 for r in rows)
    table = (out / "table.md").read_text()
    assert "cHeartFlow (labels) left out" in table and "baseline" in table and "no_such_run" in table
    assert cv2.imread(str(out / "grid_edges.png")).shape[0] > 2 * RES
    assert (out / "t1_curve.png").is_file() and not (out / "grid_labels.png").exists()


def test_per_patient_indices_and_slice_subsets(slices):
    from cheartflow_sdk.research.evaluation import per_patient_indices

    patients = ["a", "a", "a", "a", "b", "c", "c", "c", "c", "c", "c"]
    idx = per_patient_indices(patients, 2)
    assert idx.tolist() == [1, 3, 4, 6, 9]  # a: positions 0.25n, 0.75n of 4; b: its only slice; c: of 6
    assert per_patient_indices(patients, 10).tolist() == list(range(len(patients)))
    with pytest.raises(InvalidInputError, match=">= 1"):
        per_patient_indices(patients, 0)
    sub = slices.subset(per_patient_indices(slices.patients, 2))
    assert len(sub) == 8 and sub.patients == ["p0", "p0", "p1", "p1", "p2", "p2", "p3", "p3"]
    np.testing.assert_array_equal(sub.images[0], slices.images[1])
    assert sub.slice_index[:2] == [1, 4]
    with pytest.raises(InvalidInputError, match=r"\[0, 24\)"):
        slices.subset([24])


def test_report_scores_costly_methods_on_a_per_patient_subset(slices, tiny_segmenter, tmp_path, quality_script):
    from cheartflow_sdk.research.evaluation import Method

    report = quality_script("report")
    seg, _ = tiny_segmenter
    calls: dict[str, list[int]] = {"cheap": [], "costly": []}

    def method(name):
        def fn(sketches):
            calls[name].append(len(sketches))
            return np.clip(sketches * 0.8 + 0.1, 0, 1)
        return fn

    extra = [Method("cheap", "edges", 1, method("cheap")), Method("costly", "edges", 200, method("costly"))]
    notes: list[str] = []
    rows, grids = report.run_benchmark(slices, models={}, extra_methods=extra, segmenter=seg, sketches=("edges",),
                                       subset_per_patient=2, n_samples=2, notes=notes)
    assert calls == {"cheap": [24, 8], "costly": [8]}  # the costly one never sees all 24 slices
    full = [(r["method"], r["n_slices"]) for r in rows if not r.get("subset")]
    subset = [(r["method"], r["n_slices"], r["subset"]) for r in rows if r.get("subset")]
    assert full == [("cheap", 24), ("real images (reference)", 24)]
    assert subset == [("cheap", 8, "2 per patient"), ("costly", 8, "2 per patient"),
                      ("real images (reference)", 8, "2 per patient")]
    assert [title for title, _ in grids["edges"][2]] == ["cheap", "costly 200"]  # the grid shows every method
    assert any("NFE >= 100 ran on 8 of 24 slices" in n for n in notes)
    report.write_report(tmp_path, rows, grids, notes)
    table = (tmp_path / "table.md").read_text()
    assert "### All methods on the same subset: 2 per patient, 8 slices of 4 patients" in table
    assert table.count("| costly | 200 |") == 1 and table.count("| cheap | 1 |") == 2
