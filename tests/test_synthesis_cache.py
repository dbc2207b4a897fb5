"""The synthesis cache: fingerprints, entries, and evaluations that reuse stored images."""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest

from cheartflow_sdk.data import SliceSet
from cheartflow_sdk.errors import InvalidInputError
from cheartflow_sdk.research.evaluation import METRIC_KEYS, Evaluator, Method, evaluate_methods
from cheartflow_sdk.research.synthesis_cache import SynthesisCache, fingerprint_files

RES = 32


@pytest.fixture(scope="module")
def slices():
    from cheartflow_sdk.data.phantom import make_phantom

    images, labels = make_phantom(12, size=RES, seed=4)
    return SliceSet(images, labels, [f"p{i // 4}" for i in range(12)], ["ED"] * 12, list(range(12)))


def _counting_method(calls: list[int], shift: float = 0.1):
    def fn(sketches):
        calls.append(len(sketches))
        return np.clip(sketches * 0.7 + shift + np.random.default_rng(len(calls)).uniform(0, 0.05, sketches.shape), 0, 1)
    return fn


def test_fingerprint_covers_names_and_bytes_and_folders(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"weights")
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ignored.bin").write_bytes(b"not directly in the folder")
    folder = fingerprint_files([tmp_path])
    assert folder == fingerprint_files([tmp_path / "a.bin", tmp_path / "b.json"])  # regular files directly in it
    only_a = fingerprint_files([tmp_path / "a.bin"])
    assert only_a != folder
    (tmp_path / "a.bin").write_bytes(b"weightz")
    assert fingerprint_files([tmp_path / "a.bin"]) != only_a
    with pytest.raises(FileNotFoundError, match="no_such"):
        fingerprint_files([tmp_path / "no_such.safetensors"])


def test_entries_round_trip_and_miss_on_other_keys_or_sketches(tmp_path, caplog):
    cache = SynthesisCache(tmp_path / "cache")
    sketches = np.random.default_rng(0).uniform(0, 1, (3, 1, 8, 8)).astype(np.float32)
    images = np.random.default_rng(1).uniform(0, 1, (3, 1, 8, 8)).astype(np.float32)
    assert cache.load("m|steps=1", sketches) is None
    path = cache.store("m|steps=1", sketches, images, 2.5)
    assert path.parent == tmp_path / "cache" and not list(path.parent.glob(".*tmp*"))  # atomic: no leftovers
    got, seconds = cache.load("m|steps=1", sketches)
    np.testing.assert_array_equal(got, images)
    assert got.dtype == np.float32 and seconds == 2.5
    assert cache.load("m|steps=2", sketches) is None
    other = sketches.copy()
    other[0, 0, 0, 0] += 0.5
    assert cache.load("m|steps=1", other) is None
    assert cache.load("m|steps=1", sketches.astype(np.float64)) is None  # same values, other bytes
    path.write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING, logger="cheartflow_sdk.research.synthesis_cache"):
        assert cache.load("m|steps=1", sketches) is None
    assert "unreadable" in caplog.text and path.name in caplog.text


def test_bad_cache_use_is_named(tmp_path):
    sketches = np.zeros((2, 1, 4, 4), np.float32)
    cache = SynthesisCache(tmp_path)
    with pytest.raises(InvalidInputError, match="2 sketches"):
        cache.store("m", sketches, np.zeros((3, 1, 4, 4), np.float32), 1.0)
    with pytest.raises(InvalidInputError, match="non-empty string"):
        cache.entry_path("", sketches)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder"):
        SynthesisCache(tmp_path / "file")


def test_evaluator_scores_cached_images_without_running_the_method(slices, tmp_path):
    calls: list[int] = []
    fn = _counting_method(calls)
    first = Evaluator(slices, cache=tmp_path).evaluate(fn, "m", "edges", 200, cache_key="m|v1", seed=0)
    assert calls == [12] and first.row["synth_cached"] is False
    again = Evaluator(slices, cache=str(tmp_path)).evaluate(fn, "m", "edges", 200, cache_key="m|v1", seed=0)
    assert calls == [12] and again.row["synth_cached"] is True  # a new evaluator (as in a rerun) reuses the images
    assert again.row["synth_seconds"] == first.row["synth_seconds"]  # the time the synthesis really took
    assert {k: again.row[k] for k in METRIC_KEYS} == {k: first.row[k] for k in METRIC_KEYS}
    np.testing.assert_array_equal(again.samples, first.samples)
    # other chunking of the method's calls, another key or no key: synthesized again
    Evaluator(slices, cache=tmp_path, method_batch_size=5).evaluate(fn, "m", "edges", 200, cache_key="m|v1")
    Evaluator(slices, cache=tmp_path).evaluate(fn, "m", "edges", 200, cache_key="m|v2")
    plain = Evaluator(slices, cache=tmp_path).evaluate(fn, "m", "edges", 200)
    assert calls == [12, 5, 5, 2, 12, 12] and "synth_cached" not in plain.row
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_methods_and_the_report_resume_from_the_cache(slices, tmp_path, quality_script):
    report = quality_script("report")
    calls: dict[str, list[int]] = {"cheap": [], "costly": []}
    methods = [Method("cheap", "edges", 1, _counting_method(calls["cheap"]), cache_key="cheap|1"),
               Method("costly", "edges", 200, _counting_method(calls["costly"], 0.2), cache_key="costly|1")]
    first, _ = report.run_benchmark(slices, models={}, extra_methods=methods, sketches=("edges",),
                                    subset_per_patient=2, cache=tmp_path)
    assert calls == {"cheap": [12, 6], "costly": [6]}
    second, grids = report.run_benchmark(slices, models={}, extra_methods=methods, sketches=("edges",),
                                         subset_per_patient=2, cache=tmp_path)
    assert calls == {"cheap": [12, 6], "costly": [6]}  # nothing synthesized again
    assert [r["synth_cached"] for r in second] == [True, True, True]
    assert [{k: r[k] for k in METRIC_KEYS} for r in second] == [{k: r[k] for k in METRIC_KEYS} for r in first]
    assert [t for t, _ in grids["edges"][2]] == ["cheap", "costly 200"]
    evaluate_methods(Evaluator(slices, cache=tmp_path), methods[:1])
    assert calls["cheap"] == [12, 6]


def test_baseline_keys_fingerprint_the_run_and_name_the_sampling(tmp_path, quality_script):
    report = quality_script("report")
    (tmp_path / "config.json").write_text('{"kind": "iddpm"}')
    (tmp_path / "model.safetensors").write_bytes(b"w1")
    synth = types.SimpleNamespace(kind="iddpm", sketch_kind="labels", default_steps=200, source=tmp_path,
                                  device="cpu", amp=None)
    key_200 = report.baseline_method(synth, steps=200).cache_key
    assert key_200 == report.baseline_method(synth, steps=200).cache_key
    assert "steps=200" in key_200 and "seed=0" in key_200 and "cpu" in key_200
    assert report.baseline_method(synth, steps=1000).cache_key != key_200
    assert report.baseline_method(synth, steps=200, seed=1).cache_key != key_200
    (tmp_path / "model.safetensors").write_bytes(b"w2")  # retrained weights: a new key
    assert report.baseline_method(synth, steps=200).cache_key != key_200
    no_source = types.SimpleNamespace(kind="pix2pix", sketch_kind="edges", default_steps=1)
    assert report.baseline_method(no_source).cache_key is None


def test_baseline_methods_sample_with_their_steps_seed_and_a_progress_bar(quality_script):
    calls = []

    class FakeIddpm:
        kind, sketch_kind, default_steps = "iddpm", "edges", 200

        def __call__(self, sketches, steps=None, seed=0, progress=False):
            calls.append((len(sketches), steps, seed, progress))
            return sketches

    method = quality_script("report").baseline_method(FakeIddpm(), steps=1000, seed=3)
    assert (method.name, method.sketch, method.nfe, method.extra) == ("iDDPM", "edges", 1000, {"seed": 3})
    method.fn(np.zeros((2, 1, 8, 8), np.float32))
    assert calls == [(2, 1000, 3, True)]


def test_pipeline_keys_change_with_the_sampling_settings(trained_model_dir):
    from cheartflow_sdk.research.evaluation import pipeline_cache_key
    from cheartflow_sdk.pipeline import load_pipeline

    pipe = load_pipeline(trained_model_dir, backend="torch", device="cpu")
    one = pipeline_cache_key(pipe, 1)
    assert one == pipeline_cache_key(load_pipeline(trained_model_dir, backend="torch", device="cpu"), 1)
    keys = {one, pipeline_cache_key(pipe, 2, (0.5,)), pipeline_cache_key(pipe, 2, (0.3,)),
            pipeline_cache_key(pipe, 1, seed=1)}
    assert len(keys) == 4 and pipe.backend in one
