"""The public API: load_pipeline, synthesize, stream, and their errors."""

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError, ModelNotAvailableError

from conftest import RES


@pytest.fixture(scope="module")
def pipe(onnx_model):
    return cf.load_pipeline(onnx_model, device="cpu")


def test_backend_choice(trained_model_dir, onnx_model, pipe):
    assert pipe.backend == "onnxruntime-cpu" and pipe.config.resolution == RES
    assert cf.load_pipeline(trained_model_dir).backend == "onnxruntime-cpu"  # folder with model.onnx: auto -> ORT
    assert cf.load_pipeline(trained_model_dir, backend="torch").backend == "torch"


def test_synthesize_shapes_and_range(pipe, phantom_set):
    _, _, sketches = phantom_set
    out = pipe.synthesize(sketches[:3], steps=2, seed=1)
    assert out.shape == (3, 1, RES, RES) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    u8 = (sketches[:3, 0] * 255).astype(np.uint8)
    np.testing.assert_allclose(pipe.synthesize(u8, steps=1), pipe.synthesize(sketches[:3], steps=1), atol=1e-6)


def test_seed_determinism_and_batch_invariance(pipe, phantom_set):
    _, _, sketches = phantom_set
    a = pipe.synthesize(sketches[:5], steps=3, seed=4)
    b = pipe.synthesize(sketches[:5], steps=3, seed=4, batch_size=2)
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = pipe.synthesize(sketches[:5], steps=3, seed=5)
    assert np.abs(a - c).max() > 1e-4  # another seed gives other noise


def test_torch_and_ort_pipelines_agree(trained_model_dir, pipe, phantom_set):
    _, _, sketches = phantom_set
    torch_pipe = cf.load_pipeline(trained_model_dir, backend="torch", device="cpu")
    np.testing.assert_allclose(torch_pipe.synthesize(sketches[:4], steps=2, seed=3),
                               pipe.synthesize(sketches[:4], steps=2, seed=3), atol=1e-4)


def test_stream_equals_synthesize_on_ragged_batches(pipe, phantom_set):
    _, _, sketches = phantom_set
    batches = [sketches[0:3], sketches[3:4], sketches[4:9]]
    streamed = list(pipe.stream(iter(batches), steps=2, seed=9))
    assert [len(s) for s in streamed] == [3, 1, 5]
    np.testing.assert_allclose(np.concatenate(streamed), pipe.synthesize(sketches[:9], steps=2, seed=9), atol=1e-6)


def test_stream_names_the_bad_batch(pipe, phantom_set):
    _, _, sketches = phantom_set
    bad = sketches[:2].copy()
    bad[1, 0, 0, 0] = np.nan
    gen = pipe.stream([sketches[:2], bad], steps=1)
    next(gen)
    with pytest.raises(InvalidInputError, match="stream batch 1"):
        next(gen)


def test_schedules(pipe, phantom_set):
    _, _, sketches = phantom_set
    default = pipe.synthesize(sketches[:2], steps=2, seed=0)
    np.testing.assert_array_equal(default, pipe.synthesize(sketches[:2], steps=2, schedule=[0.5], seed=0))
    per_sample = pipe.synthesize(sketches[:2], steps=2, schedule=[[0.5], [0.3]], seed=0)
    np.testing.assert_array_equal(per_sample[0], default[0])
    with pytest.raises(InvalidInputError):
        pipe.synthesize(sketches[:2], steps=2, schedule=[1.5])
    with pytest.raises(InvalidInputError):
        pipe.synthesize(sketches[:2], steps=3, schedule=[0.5])


def test_bad_inputs(pipe, phantom_set):
    _, _, sketches = phantom_set
    with pytest.raises(ModelMismatchError, match=f"{RES}"):
        pipe.synthesize(np.zeros((1, 1, 64, 64), np.float32))
    with pytest.raises(ModelMismatchError, match="trained on 'edges'"):
        pipe.synthesize(sketches[:1], sketch_kind="labels")
    nan = sketches[:1].copy()
    nan[0, 0, 1, 1] = np.inf
    with pytest.raises(InvalidInputError, match="inf"):
        pipe.synthesize(nan)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        pipe.synthesize(sketches[:1] * 3)
    with pytest.raises(InvalidInputError):
        pipe.synthesize(np.zeros((0, 1, RES, RES), np.float32))
    with pytest.raises(InvalidInputError):
        pipe.synthesize(sketches[:1].astype(np.complex64))
    with pytest.raises(InvalidInputError, match="seed"):
        pipe.synthesize(sketches[:1], seed=-1)


def test_threads_reach_the_engine_and_change_no_pixel(onnx_model, trained_model_dir, pipe, phantom_set):
    import torch

    _, _, sketches = phantom_set
    one = cf.load_pipeline(onnx_model, device="cpu", threads=1)
    assert one.encoder.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(one.synthesize(sketches[:3], steps=2, seed=2), pipe.synthesize(sketches[:3], steps=2, seed=2),
                               atol=1e-5)
    before = torch.get_num_threads()
    try:
        cf.load_pipeline(trained_model_dir, backend="torch", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InvalidInputError, match="threads: expected an int >= 1"):
            cf.load_pipeline(onnx_model, threads=bad)


def test_load_errors(tmp_path, trained_model_dir):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        cf.load_pipeline(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="backend must be one of"):
        cf.load_pipeline(trained_model_dir, backend="tensorflow")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="model folder or an .onnx"):
        cf.load_pipeline(tmp_path / "w.bin")
