"""Loading the compiled module ``cheartflow_sdk._C`` once (CHEARTFLOW_NATIVE=0 forces the numpy reference)."""

from __future__ import annotations

import logging
import os
from typing import Any

_LOG = logging.getLogger("cheartflow_sdk.kernels")
_native_module: Any = None
_native_checked = False


def load() -> Any:
    """The _C module, or None (not importable, or disabled by CHEARTFLOW_NATIVE=0)."""
    global _native_module, _native_checked
    if not _native_checked:
        _native_checked = True
        if os.environ.get("CHEARTFLOW_NATIVE", "1") != "0":
            try:
                from .. import _C  # type: ignore[attr-defined]

                _native_module = _C
            except ImportError as exc:
                _LOG.warning("cheartflow_sdk._C is not importable (%s); using the slower numpy reference kernels", exc)
    return _native_module
