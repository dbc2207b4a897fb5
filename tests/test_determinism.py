"""One sketch, one image: a sketch with a seed gives the same image alone, in any batch, at any position of a
request or stream, on ONNX Runtime and torch, for 1, 2 and 4 steps (noise keyed by the seed and the sketch)."""

from __future__ import annotations

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk import sampling
from cheartflow_sdk.errors import InvalidInputError

ATOL = 1e-6  # the noise is bit-identical; the encoder's own batch-size-dependent float rounding is all that is left


@pytest.fixture(scope="module")
def pipes(trained_model_dir, onnx_model):
    return {"onnxruntime": cf.load_pipeline(onnx_model, device="cpu"),
            "torch": cf.load_pipeline(trained_model_dir, backend="torch", device="cpu")}


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_one_sketch_one_image_across_batchings_positions_and_streams(pipes, phantom_set, backend, steps):
    pipe = pipes[backend]
    sk = phantom_set[2][:6]
    whole = pipe.synthesize(sk, steps=steps, seed=5)
    for i in range(len(sk)):  # synthesize(x)[i] == synthesize(x[i:i+1])
        np.testing.assert_allclose(pipe.synthesize(sk[i:i + 1], steps=steps, seed=5)[0], whole[i], atol=ATOL)
    order = np.array([4, 0, 5, 2, 1, 3])
    np.testing.assert_allclose(pipe.synthesize(sk[order], steps=steps, seed=5), whole[order], atol=ATOL)
    np.testing.assert_allclose(pipe.synthesize(sk, steps=steps, seed=5, batch_size=4), whole, atol=ATOL)
    streamed = np.concatenate(list(pipe.stream([sk[3:4], sk[0:3], sk[4:6]], steps=steps, seed=5)))
    np.testing.assert_allclose(streamed, whole[[3, 0, 1, 2, 4, 5]], atol=ATOL)
    repeated = pipe.synthesize(np.concatenate([sk[2:3]] * 3), steps=steps, seed=5)  # the same sketch thrice
    np.testing.assert_allclose(repeated, np.repeat(whole[2:3], 3, axis=0), atol=ATOL)
    per_sample = pipe.synthesize(sk, steps=steps, seed=[5, 6, 5, 5, 5, 5])  # a per-sample seed array
    np.testing.assert_allclose(per_sample[[0, 2, 3, 4, 5]], whole[[0, 2, 3, 4, 5]], atol=ATOL)
    np.testing.assert_allclose(per_sample[1], pipe.synthesize(sk[1:2], steps=steps, seed=6)[0], atol=ATOL)
    if steps > 1:  # the seed matters (one-step sampling draws no noise)
        assert np.abs(per_sample[1] - whole[1]).max() > 1e-3
        assert np.abs(pipe.synthesize(sk, steps=steps, seed=7) - whole).max() > 1e-3


def test_onnxruntime_and_torch_get_the_same_noise(pipes, phantom_set):
    sk = phantom_set[2][:3]
    a = pipes["onnxruntime"].synthesize(sk, steps=4, seed=11)
    b = pipes["torch"].synthesize(sk[::-1].copy(), steps=4, seed=11)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_noise_keys_follow_the_sketch_and_the_seed(phantom_set):
    sk = phantom_set[2][:4]
    keys = sampling.noise_keys(sk, 3)
    assert keys.dtype == np.uint64 and len(set(keys.tolist())) == 4
    np.testing.assert_array_equal(sampling.noise_keys(sk[2:3], 3), keys[2:3])
    np.testing.assert_array_equal(sampling.noise_keys(sk, [3, 3, 3, 3]), keys)
    u8 = np.rint(sk[:, 0] * 255).astype(np.uint8)  # uint8 is read as value / 255, like validation does
    np.testing.assert_array_equal(sampling.noise_keys(u8, 3), sampling.noise_keys(u8.astype(np.float32)[:, None] / np.float32(255), 3))
    assert (sampling.noise_keys(sk, 4) != keys).all()
    # the documented definition: BLAKE2b-64 keyed by the seed over the float32 little-endian values
    import hashlib

    h = hashlib.blake2b(sk[1].astype("<f4").tobytes(), digest_size=8, key=(3).to_bytes(8, "little"),
                        person=b"cheartflow-noise")
    assert int(keys[1]) == int.from_bytes(h.digest(), "little")


@pytest.mark.parametrize("seed, match", [
    (-1, r"seed: expected an int in \[0, 2\*\*64\)"), ("2", "seed: expected an int"), (2.0, "seed: expected an int"),
    ([1, 2], r"seed: expected an int or 3 ints \(one per sketch\)"), (np.zeros((3, 1), int), "one per sketch"),
    ([1, 2, -3], r"seed: expected an int in \[0, 2\*\*64\)"),
])
def test_bad_seeds_are_refused(pipes, phantom_set, seed, match):
    with pytest.raises(InvalidInputError, match=match):
        pipes["onnxruntime"].synthesize(phantom_set[2][:3], steps=2, seed=seed)
