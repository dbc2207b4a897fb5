"""`cheartflow verify ENGINE`: rerun the parity gate of an exported engine against its source checkpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import contract
from ..config import CONFIG_FILENAME
from ..errors import InvalidInputError, ModelMismatchError, ModelNotAvailableError
from .parity import ParityReport, check_parity, describe_gate, gate_limits

log = logging.getLogger(__name__)


@dataclass
class VerifyReport(ParityReport):
    """The parity numbers plus what was verified: engine, backend, precision, and the source-hash check."""

    engine: str = ""
    backend: str = ""
    precision: str = "fp32"
    reference_dir: str = ""
    source_sha256_expected: str | None = None  # recorded in the engine at export
    source_sha256_actual: str | None = None  # of the reference checkpoint used now

    @property
    def source_matches(self) -> bool:
        """Whether the reference checkpoint is the one the engine was exported from."""
        return self.source_sha256_expected is not None and self.source_sha256_expected == self.source_sha256_actual

    @property
    def gate_passed(self) -> bool:
        return self.passes(**gate_limits(self.precision))

    @property
    def passed(self) -> bool:
        """The gate of the engine's precision passes against the engine's own source checkpoint."""
        return self.gate_passed and self.source_matches

    def summary(self) -> str:
        gate = "passed" if self.gate_passed else "FAILED"
        source = ("matches the engine's recorded source" if self.source_matches else
                  f"DIFFERS from the engine's recorded source (engine: {self.source_sha256_expected}, "
                  f"checkpoint: {self.source_sha256_actual})")
        return (f"{self.engine} [{self.backend}, {self.precision}]: parity gate {gate}: {describe_gate(self, self.precision)}; "
                f"reference {self.reference_dir} {source}")


def _is_checkpoint(folder: Path) -> bool:
    return (folder / CONFIG_FILENAME).is_file() and (folder / contract.MODEL_FILENAME).is_file()


def find_reference(engine: Path, meta: dict[str, str], reference_model_dir: str | Path | None = None) -> Path:
    """The source checkpoint folder: the explicit argument, else the engine's own folder when it holds one,
    else the source folder recorded at export (its name: looked up beside the engine's folder and in the
    working directory; engines of older versions recorded a full path)."""
    if reference_model_dir is not None:
        ref = Path(reference_model_dir)
        if not _is_checkpoint(ref):
            raise ModelNotAvailableError(f"{ref} is not a model folder ({CONFIG_FILENAME} + {contract.MODEL_FILENAME})")
        return ref
    recorded = meta.get(contract.META_SOURCE_PATH)
    looks = [engine.parent] + ([engine.parent.parent / recorded, Path(recorded)] if recorded else [])
    for ref in looks:
        if ref is not None and _is_checkpoint(ref):
            return ref
    raise ModelNotAvailableError(f"verifying {engine} needs its source checkpoint: none in {engine.parent} nor at the "
                                 f"recorded source {recorded!r}; pass reference_model_dir (--reference MODEL_DIR)")


def verify_engine(path: str | Path, reference_model_dir: str | Path | None = None, device: str = "auto",
                  raise_on_failure: bool = False) -> VerifyReport:
    """Rerun the parity gate of the engine file `path` against the fp32 PyTorch encoder of its source checkpoint.

    The report says whether the gate of the engine's precision passes and whether the checkpoint's sha256 is
    the one recorded in the engine (a different checkpoint is logged as a warning and fails `passed`). With
    `raise_on_failure`, a failure raises ModelMismatchError with the summary.
    """
    from ..backends.registry import open_encoder
    from ..backends.torch_backend import TorchEncoder

    path = Path(path)
    if not path.is_file() or contract.engine_backend(path) is None:
        raise InvalidInputError(f"expected an engine file (.onnx, .engine/.plan or .pt2), got {path}")
    engine = open_encoder(path, "auto", device)
    meta = dict(engine.metadata)
    ref_dir = find_reference(path, meta, reference_model_dir)
    reference = TorchEncoder(ref_dir, device="cpu")
    if reference.config != engine.config:
        raise ModelMismatchError(f"{path} was exported for a different model config than {ref_dir}: "
                                 f"engine {engine.config}, checkpoint {reference.config}")
    parity = check_parity(engine, reference, engine.config.resolution)
    report = VerifyReport(**vars(parity), engine=str(path), backend=engine.name,
                          precision=getattr(engine, "gate_precision", meta.get(contract.META_PRECISION, "fp32")),
                          reference_dir=str(ref_dir),
                          source_sha256_expected=meta.get(contract.META_SOURCE_SHA256),
                          source_sha256_actual=contract.file_sha256(ref_dir / contract.MODEL_FILENAME))
    if not report.source_matches:
        log.warning("%s: the reference checkpoint %s is not the engine's recorded source", path, ref_dir)
    (log.info if report.passed else log.warning)("verify: %s", report.summary())
    if raise_on_failure and not report.passed:
        raise ModelMismatchError(f"verify failed: {report.summary()}")
    return report
