"""Atomic file writes: a failure never leaves a truncated file, and an existing file stays intact.

Standard library only, so checkpointing and export do not pull in image libraries.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import InvalidInputError

PathLike = str | os.PathLike
_DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz")


def _tmp_suffix(name: str) -> str:
    low = name.lower()
    for ext in _DOUBLE_SUFFIXES:
        if low.endswith(ext):
            return name[-len(ext) :]
    return Path(name).suffix


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it onto `path`, on error delete it.

    The temporary file (``.{name}.tmp-XXXXXXXX{suffix}``, created empty) keeps the suffix of
    `path` so writers that look at it (cv2.imwrite, np.save, nibabel) still work. Parent
    folders are created. On an exception the temporary file is removed and an existing
    `path` is left untouched; ``os.replace`` makes the final move atomic.
    """
    target = Path(path)
    if not target.name:
        raise InvalidInputError(f"{path!r}: expected a file path, got a path without a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _create_tmp(target)
    try:
        yield tmp
        # Some writers (safetensors) replace the file with a private 0600 one; give it the usual mode.
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _create_tmp(target: Path) -> tuple[Path, int]:
    """An empty, unique temporary file next to `target`, and the mode the umask gave it (0o666 & ~umask).

    Reading the mode back from the new file avoids os.umask(), which changes a process-wide setting.
    """
    suffix = _tmp_suffix(target.name)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode honours the umask
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(f"{target}: could not create a unique temporary file next to it")


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed and fsync'ed before the rename); returns the Path."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically, encoded with `encoding` (newlines are not translated)."""
    return atomic_write_bytes(path, text.encode(encoding))
