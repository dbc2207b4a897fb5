"""Engine metadata: the same keys for every format (ONNX metadata_props, or a `<engine>.json` sidecar)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import contract
from .._version import __version__
from ..atomic import atomic_write_text


def engine_metadata(cfg: Any, model_dir: str | Path, precision: str, fmt: str, **extra: Any) -> dict[str, str]:
    """The metadata every engine carries: model config, sketch kind, resolution, sigma, default schedule,
    SDK version, source checkpoint hash and folder name, precision and format (plus `extra` contract.META_* keys)."""
    model_dir = Path(model_dir)
    meta = {
        contract.META_MODEL_CONFIG: json.dumps(asdict(cfg)),
        contract.META_SKETCH_KIND: cfg.sketch_kind,
        contract.META_RESOLUTION: str(cfg.resolution),
        contract.META_SIGMA: repr(cfg.sigma),
        contract.META_DEFAULT_SCHEDULE: json.dumps(list(cfg.default_schedule)),
        contract.META_SDK_VERSION: __version__,
        contract.META_SOURCE_SHA256: contract.file_sha256(model_dir / contract.MODEL_FILENAME),
        contract.META_SOURCE_PATH: model_dir.resolve().name,  # the folder's name only: no build-machine path
        contract.META_PRECISION: precision,
        contract.META_FORMAT: fmt,
    }
    meta.update({k: str(v) for k, v in extra.items() if v is not None})
    return meta


def sidecar_document(meta: dict[str, str], engine_file: str | Path) -> dict[str, str]:
    """The sidecar of an engine: its metadata plus the sha256 of `engine_file` (checked at load)."""
    doc = dict(meta)
    doc[contract.META_ENGINE_SHA256] = contract.file_sha256(engine_file)
    return doc


def write_sidecar(engine: str | Path, doc: dict[str, str]) -> Path:
    """Write `<engine>.json` atomically."""
    return atomic_write_text(contract.sidecar_path(engine), json.dumps(doc, indent=2, sort_keys=True) + "\n")
