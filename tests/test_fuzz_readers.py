"""Bounded fuzzing of the readers (issue 15, item 7): image files, .npy, NIfTI, engine metadata and config.json.

Each target gets random bytes and mutations (byte flips, truncations, splices) of a valid file; any exception
that is not one of the SDK's errors (CheartflowError) fails the test. The whole file runs in well under a
minute (fixed example counts, no deadline). Inputs that found bugs are kept in tests/data/fuzz_corpus/ and
replayed first (``test_corpus_replays_cleanly``).
"""

from __future__ import annotations

import io as _io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cheartflow_sdk import io as cio  # noqa: E402
from cheartflow_sdk.errors import CheartflowError  # noqa: E402

CORPUS = Path(__file__).parent / "data" / "fuzz_corpus"
EXAMPLES = int(os.environ.get("CHEARTFLOW_FUZZ_EXAMPLES", "40"))  # longer local runs: CHEARTFLOW_FUZZ_EXAMPLES=2000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _seed_files() -> dict[str, bytes]:
    img = np.zeros((16, 16), np.uint8)
    cv2.circle(img, (8, 8), 5, 255, 1)
    seeds = {}
    for ext in (".png", ".jpg", ".tif", ".bmp"):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        seeds[ext] = buf.tobytes()
    npy = _io.BytesIO()
    np.save(npy, (img > 0).astype(np.uint8))
    seeds[".npy"] = npy.getvalue()
    nib = pytest.importorskip("nibabel")
    lab = np.zeros((16, 16, 2), np.int16)
    lab[4:12, 4:12] = 1
    nii = nib.Nifti1Image(lab, np.eye(4))
    seeds[".nii"] = nii.to_bytes()
    import gzip

    seeds[".nii.gz"] = gzip.compress(seeds[".nii"])
    return seeds


SEEDS = _seed_files()


@st.composite
def mutated(draw, seed: bytes):
    """A valid file with a few byte flips, a truncation or a splice of random bytes, or just random bytes."""
    mode = draw(st.sampled_from(["flip", "truncate", "splice", "random"]))
    data = bytearray(seed)
    if mode == "random":
        return draw(st.binary(max_size=512))
    if mode == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if mode == "splice":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at] + draw(st.binary(max_size=64)) + data[at + draw(st.integers(0, 64)):])
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


def _read(tmp_path: Path, ext: str, data: bytes, kind=None) -> None:
    path = tmp_path / f"f{ext}"
    path.write_bytes(data)
    try:
        x, names = cio.read_sketches(path, kind=kind)
    except CheartflowError:
        return
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1] == 1 and len(names) == len(x)
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1  # never silent garbage out of range


@pytest.mark.parametrize("ext", sorted(SEEDS))
def test_fuzz_sketch_readers(tmp_path, ext):
    @FUZZ
    @given(data=mutated(SEEDS[ext]), kind=st.sampled_from([None, "edges", "labels"]))
    def run(data, kind):
        _read(tmp_path, ext, data, kind)

    run()


def test_fuzz_config_json(tmp_path):
    from cheartflow_sdk.config import ModelConfig, config_to_json, read_config

    seed = config_to_json(ModelConfig()).encode()
    values = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) | st.text(max_size=8),
                          lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                          max_leaves=8)

    @FUZZ
    @given(data=mutated(seed) | st.builds(lambda m: json.dumps({"model": m}).encode(),
                                          st.dictionaries(st.sampled_from(sorted(ModelConfig.__dataclass_fields__)),
                                                          values, max_size=5)))
    def run(data):
        (tmp_path / "config.json").write_bytes(data)
        try:
            read_config(tmp_path)
        except CheartflowError:
            pass

    run()


def test_fuzz_engine_metadata(tmp_path):
    from cheartflow_sdk import contract
    from cheartflow_sdk.config import ModelConfig

    good = json.dumps(ModelConfig().__dict__ | {"channel_mult": [1, 2, 3, 4], "attention_levels": [3]})

    @FUZZ
    @given(data=mutated(good.encode()), extra=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3))
    def run(data, extra):
        meta = {contract.META_MODEL_CONFIG: data.decode("utf-8", "replace"), **extra}
        try:
            contract.config_from_metadata(meta, "engine.onnx")
        except CheartflowError:
            pass
        sidecar = tmp_path / "e.onnx.json"
        sidecar.write_bytes(data)
        try:
            contract.read_sidecar(tmp_path / "e.onnx") if hasattr(contract, "read_sidecar") else None
        except CheartflowError:
            pass

    run()


def test_corpus_replays_cleanly(tmp_path):
    """Every sketch file a fuzzer once broke the readers with (named ``*<sketch extension>``)."""
    files = sorted(f for f in CORPUS.glob("*") if f.is_file())
    assert files, f"the fuzz corpus {CORPUS} is missing"
    for f in files:
        for kind in (None, "edges", "labels"):
            _read(tmp_path, cio._extension(f) or f.suffix, f.read_bytes(), kind)


def test_config_corpus_replays_cleanly(tmp_path):
    from cheartflow_sdk.config import read_config

    files = sorted((CORPUS / "config").glob("*.json"))
    assert len(files) >= 2
    for f in files:
        (tmp_path / "config.json").write_bytes(f.read_bytes())
        try:
            read_config(tmp_path)
        except CheartflowError:
            pass
