"""Tests of cheartflow_sdk.validation: sketch batches, schedules, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError
from cheartflow_sdk.validation import as_sketch_batch, check_schedule, check_seed

RNG = np.random.default_rng(0)


def _check_out(out: np.ndarray, shape: tuple[int, ...]) -> None:
    assert out.dtype == np.float32
    assert out.shape == shape
    assert out.flags.c_contiguous
    assert out.min() >= 0.0 and out.max() <= 1.0


# ----------------------------------------------------------------- accepted forms


def test_uint8_batch_divided_by_255():
    x = RNG.integers(0, 256, size=(3, 8, 10), dtype=np.uint8)
    out = as_sketch_batch(x)
    _check_out(out, (3, 1, 8, 10))
    np.testing.assert_allclose(out[:, 0], x / 255.0, atol=1e-7)
    assert out[:, 0].max() == np.float32(x.max()) / 255


def test_uint8_single_image_and_extremes():
    x = np.array([[0, 255], [128, 1]], dtype=np.uint8)
    out = as_sketch_batch(x)
    _check_out(out, (1, 1, 2, 2))
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 0, 1] == 1.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 1, 6, 7), (2, 6, 7), (6, 7)])
def test_float_forms(dtype, shape):
    x = RNG.random(shape).astype(dtype)
    out = as_sketch_batch(x)
    b = shape[0] if len(shape) > 2 else 1
    _check_out(out, (b, 1, 6, 7))
    np.testing.assert_allclose(out.reshape(x.shape), x.astype(np.float32), atol=1e-7)


def test_float32_output_is_a_copy():
    x = RNG.random((1, 1, 4, 4)).astype(np.float32)
    out = as_sketch_batch(x)
    out[...] = 0.5
    assert not np.all(x == 0.5)


def test_small_tolerance_is_clipped():
    x = np.array([[-5e-7, 1.0 + 5e-7]], dtype=np.float64)
    out = as_sketch_batch(x)
    assert out.min() == 0.0 and out.max() == 1.0


def test_bool_is_zero_one():
    x = np.array([[True, False], [False, True]])
    out = as_sketch_batch(x)
    _check_out(out, (1, 1, 2, 2))
    assert out[0, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_int_within_0_255_treated_as_uint8():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.int64)
    out = as_sketch_batch(x)
    np.testing.assert_allclose(out[0, 0], x[0] / 255.0, atol=1e-7)


def test_list_of_2d_arrays_mixed_dtypes():
    a = np.full((5, 6), 255, np.uint8)
    b = np.full((5, 6), 0.25, np.float32)
    out = as_sketch_batch([a, b])
    _check_out(out, (2, 1, 5, 6))
    assert out[0].min() == 1.0 and np.allclose(out[1], 0.25)
    _check_out(as_sketch_batch((a,)), (1, 1, 5, 6))


def test_resolution_match_ok():
    out = as_sketch_batch(np.zeros((2, 16, 16), np.uint8), resolution=16)
    _check_out(out, (2, 1, 16, 16))


# ----------------------------------------------------------------- errors


def test_wrong_channel_count_message():
    x = np.zeros((2, 3, 128, 128), np.float32)
    with pytest.raises(InvalidInputError) as e:
        as_sketch_batch(x)
    msg = str(e.value)
    assert msg.startswith("sketches: expected uint8 [B,H,W]")
    assert "float32 [B,1,H,W]" in msg and "got float32 array of shape (2, 3, 128, 128)" in msg


def test_name_in_message():
    with pytest.raises(InvalidInputError, match=r"^my_input: "):
        as_sketch_batch(np.zeros((2, 3, 4, 4), np.float32), name="my_input")


@pytest.mark.parametrize("bad", [[[0.0, 1.0]], "abc", 3.0, None, {"a": 1}])
def test_not_an_array(bad):
    with pytest.raises(InvalidInputError, match="numpy array"):
        as_sketch_batch(bad)


def test_torch_like_object_gets_hint():
    class FakeTensor:
        def numpy(self):
            return np.zeros((4, 4))

    with pytest.raises(InvalidInputError, match="torch tensor"):
        as_sketch_batch(FakeTensor())


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((2, 4, 4), dtype=object),
        np.zeros((2, 4, 4), dtype=np.complex64),
        np.full((2, 4, 4), "a"),
    ],
)
def test_bad_dtypes(x):
    with pytest.raises(InvalidInputError) as e:
        as_sketch_batch(x)
    assert str(x.dtype) in str(e.value) and "(2, 4, 4)" in str(e.value)


@pytest.mark.parametrize("shape", [(0, 4, 4), (0, 1, 4, 4)])
def test_empty_batch(shape):
    with pytest.raises(InvalidInputError, match=r"empty \(B == 0\)"):
        as_sketch_batch(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(2, 0, 4), (4, 0), (1, 1, 4, 0)])
def test_zero_size_images(shape):
    with pytest.raises(InvalidInputError, match="zero size"):
        as_sketch_batch(np.zeros(shape, np.uint8))


def test_empty_list():
    with pytest.raises(InvalidInputError, match="at least one image"):
        as_sketch_batch([])


@pytest.mark.parametrize("shape", [(4,), (1, 1, 1, 4, 4)])
def test_wrong_ndim(shape):
    with pytest.raises(InvalidInputError, match=f"{len(shape)} dimensions"):
        as_sketch_batch(np.zeros(shape, np.float32))


def test_nan_and_inf_counted():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, :3] = np.nan
    x[0, 0, 1, 0] = np.inf
    x[0, 0, 1, 1] = -np.inf
    with pytest.raises(InvalidInputError, match="found 3 NaN and 2 inf"):
        as_sketch_batch(x)


def test_float_out_of_range_reports_min_max():
    x = np.linspace(-0.5, 2.0, 16, dtype=np.float32).reshape(4, 4)
    with pytest.raises(InvalidInputError) as e:
        as_sketch_batch(x)
    assert "min -0.5" in str(e.value) and "max 2" in str(e.value)


def test_float_0_255_rejected():
    with pytest.raises(InvalidInputError, match="max 255"):
        as_sketch_batch(np.full((2, 4, 4), 255.0, np.float32))


def test_int_out_of_range():
    x = np.array([[0, 300], [-1, 5]], dtype=np.int32)
    with pytest.raises(InvalidInputError) as e:
        as_sketch_batch(x)
    assert "0..255" in str(e.value) and "min -1" in str(e.value) and "max 300" in str(e.value)


def test_list_errors():
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(InvalidInputError, match=r"\(4, 4\) at index 0 and \(5, 4\) at index 1"):
        as_sketch_batch([a, np.zeros((5, 4), np.uint8)])
    with pytest.raises(InvalidInputError, match=r"sketches\[1\]: expected a 2-D numpy array"):
        as_sketch_batch([a, np.zeros((1, 4, 4), np.uint8)])
    with pytest.raises(InvalidInputError, match=r"sketches\[1\].*NaN"):
        as_sketch_batch([a, np.full((4, 4), np.nan)])


def test_resolution_mismatch():
    with pytest.raises(ModelMismatchError) as e:
        as_sketch_batch(np.zeros((2, 64, 96), np.uint8), resolution=128)
    msg = str(e.value)
    assert "128x128" in msg and "64x96" in msg and "normalize_drawing(..., size=128)" in msg


@pytest.mark.parametrize("res", [0, -4, 1.5, True, "128"])
def test_bad_resolution_argument(res):
    with pytest.raises(InvalidInputError, match="resolution"):
        as_sketch_batch(np.zeros((4, 4), np.uint8), resolution=res)


# ----------------------------------------------------------------- check_schedule


def test_schedule_defaults():
    assert check_schedule(None, 1) == ()
    assert check_schedule(None, 2) == (0.5,)
    s3 = check_schedule(None, 3)
    assert len(s3) == 2 and s3 == pytest.approx((2 / 3, 1 / 3))
    s5 = check_schedule(None, 5)
    assert s5 == pytest.approx((0.8, 0.6, 0.4, 0.2))
    assert all(type(t) is float for t in s5)


def test_schedule_given():
    assert check_schedule([0.7, 0.2], 3) == (0.7, 0.2)
    assert check_schedule((np.float32(0.25),), 2) == (0.25,)
    assert check_schedule(np.array([0.9, 0.1]), 3) == (0.9, 0.1)
    assert check_schedule([], 1) == ()
    assert check_schedule(np.array([0.3]), np.int64(2)) == (0.3,)


def test_schedule_length_mismatch():
    with pytest.raises(InvalidInputError) as e:
        check_schedule([0.5], 3)
    assert "2 re-noise times" in str(e.value) and "steps=3" in str(e.value) and "got 1 values" in str(e.value)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_schedule_bad_values(bad):
    msg = r"schedule\[1\]: expected a finite float strictly inside \(0, 1\)"
    with pytest.raises(InvalidInputError, match=msg):
        check_schedule([0.5, bad], 3)


@pytest.mark.parametrize("bad", ["0.5", True, None])
def test_schedule_bad_types(bad):
    with pytest.raises(InvalidInputError, match=r"schedule\[0\]"):
        check_schedule([bad], 2)


@pytest.mark.parametrize("bad", ["0.5", 0.5, np.zeros((1, 1))])
def test_schedule_not_a_sequence(bad):
    with pytest.raises(InvalidInputError, match="schedule"):
        check_schedule(bad, 2)


@pytest.mark.parametrize("steps", [0, -1, 2.0, True, None])
def test_schedule_bad_steps(steps):
    with pytest.raises(InvalidInputError, match="steps: expected an int >= 1"):
        check_schedule(None, steps)


# ----------------------------------------------------------------- check_seed


def test_seed_ok():
    assert check_seed(0) == 0
    assert check_seed(2**64 - 1) == 2**64 - 1
    out = check_seed(np.uint64(7))
    assert out == 7 and type(out) is int
    assert check_seed(np.int32(3)) == 3


@pytest.mark.parametrize("bad", [-1, 2**64, True, np.bool_(False), 1.0, "1", None])
def test_seed_bad(bad):
    with pytest.raises(InvalidInputError, match=r"seed: expected an int in \[0, 2\*\*64\)"):
        check_seed(bad)
