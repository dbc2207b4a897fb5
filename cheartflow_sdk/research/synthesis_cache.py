"""A folder of synthesized images keyed by method and input, so that long evaluations resume and grow.

The quality report's costly methods (iDDPM with 1000 steps takes most of an hour on a CPU) run once;
a rerun that adds one baseline synthesizes only that one, and a run stopped halfway keeps what it
finished. An entry is found by the SHA-256 of the caller's *method key* and of the input sketches'
bytes. The method key must name everything that changes the images (weights, steps, schedule, seed,
backend, device); :func:`fingerprint_files` gives the weights' part. An entry holds the images
(float32, compressed) and the seconds their synthesis took.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import InvalidInputError

log = logging.getLogger(__name__)


def fingerprint_files(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 (hex) over the names and bytes of ``paths``; a folder stands for the regular files directly in it."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"cannot fingerprint {p}: no such file or folder")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


class SynthesisCache:
    """Synthesized images on disk under ``root`` (created on the first store), one ``.npz`` per entry."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise InvalidInputError(f"synthesis cache: {self.root} exists and is not a folder")

    def __repr__(self) -> str:
        return f"SynthesisCache(root='{self.root}')"

    def entry_path(self, method_key: str, sketches: np.ndarray) -> Path:
        """Where the images of ``method_key`` on ``sketches`` live (whether or not they are there yet)."""
        if not isinstance(method_key, str) or not method_key:
            raise InvalidInputError(f"synthesis cache: the method key must be a non-empty string, got {method_key!r}")
        arr = np.ascontiguousarray(sketches)
        h = hashlib.sha256(method_key.encode() + b"\0" + f"{arr.dtype.str}{arr.shape}".encode() + b"\0")
        h.update(arr.tobytes())
        return self.root / f"{h.hexdigest()}.npz"

    def get_or_run(self, method_key: str, sketches: np.ndarray,
                   synthesize: Callable[[], tuple[np.ndarray, float]]) -> tuple[np.ndarray, float, bool]:
        """(images, seconds, cached): the stored entry, or ``synthesize()`` -> (images, seconds), stored."""
        path = self.entry_path(method_key, sketches)
        found = self._read(path, method_key, len(sketches))
        if found is not None:
            log.info("synthesis cache: images from %s", path)
            return (*found, True)
        images, seconds = synthesize()
        self._write(path, method_key, len(sketches), images, seconds)
        return images, seconds, False

    def load(self, method_key: str, sketches: np.ndarray) -> tuple[np.ndarray, float] | None:
        """(images, seconds) stored for ``method_key`` on ``sketches``, or None when absent or unreadable."""
        return self._read(self.entry_path(method_key, sketches), method_key, len(sketches))

    def store(self, method_key: str, sketches: np.ndarray, images: np.ndarray, seconds: float) -> Path:
        """Keep ``images`` (one per sketch) and the ``seconds`` they took; written atomically."""
        return self._write(self.entry_path(method_key, sketches), method_key, len(sketches), images, seconds)

    def _read(self, path: Path, method_key: str, count: int) -> tuple[np.ndarray, float] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                images, seconds, stored_key = z["images"], float(z["seconds"]), str(z["method_key"])
        except (OSError, KeyError, ValueError) as exc:
            log.warning("synthesis cache: ignoring unreadable entry %s (%s); synthesizing again", path, exc)
            return None
        if stored_key != method_key or len(images) != count:
            log.warning("synthesis cache: entry %s does not match its key; synthesizing again", path)
            return None
        return images, seconds

    def _write(self, path: Path, method_key: str, count: int, images: np.ndarray, seconds: float) -> Path:
        images = np.asarray(images, dtype=np.float32)
        if len(images) != count:
            raise InvalidInputError(f"synthesis cache: {len(images)} images for {count} sketches")
        buf = io.BytesIO()
        np.savez_compressed(buf, images=images, seconds=np.float64(seconds), method_key=np.str_(method_key))
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, buf.getvalue())
