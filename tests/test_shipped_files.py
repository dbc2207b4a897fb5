"""No build-machine path in any shipped file (issue 15, item 6): engines record their source by hash and name."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cheartflow_sdk"
REPO = PACKAGE.parent


def _shipped_files():
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".so", ".pyc"):
            yield path


def test_no_build_machine_path_in_shipped_files():
    needle = str(REPO).encode()
    offenders = [str(p.relative_to(PACKAGE)) for p in _shipped_files() if needle in p.read_bytes()]
    assert not offenders, f"files holding the build path {REPO}: {offenders}"
