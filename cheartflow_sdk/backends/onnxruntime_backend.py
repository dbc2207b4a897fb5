"""ONNX Runtime backend: runs an exported .onnx encoder (CUDA execution provider when usable, else CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import contract
from .._optional import require
from ..errors import InvalidInputError, ModelMismatchError
from .chunking import run_in_chunks

log = logging.getLogger(__name__)


def read_onnx_metadata(session) -> dict[str, str]:
    """The cheartflow metadata of a loaded session (custom_metadata_map)."""
    return dict(session.get_modelmeta().custom_metadata_map)


config_from_metadata = contract.config_from_metadata  # kept here for existing imports


def _gpu_visible() -> bool:
    """Whether a GPU is present, so "auto" does not make ONNX Runtime try (and loudly fail) CUDA without one."""
    from .. import kernels

    if kernels.native_cuda_compiled():
        return kernels.cuda_available()
    return Path("/dev/nvidia0").exists()  # _C built without CUDA: fall back to the driver's device node


class OnnxRuntimeEncoder:
    """An exported .onnx engine in ONNX Runtime; numpy float32 in and out (fp16 engines keep fp32 IO).

    Lifecycle: load (session, metadata and IO check) at construction, then run per call. `precision` is
    the engine's ("fp32", "fp16" or "int8": static QDQ, named "onnxruntime-cpu-int8"); on the CPU provider ONNX Runtime has few fp16 kernels and inserts casts
    around the others, so an fp16 engine there computes mostly in fp32 on fp16-rounded weights. On the
    CPU provider a batch runs in chunks of chunking.CPU_CHUNK images (less memory, more images/s).
    """

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None):
        ort = require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"expected an ONNX engine file at {self.path}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers() and (device == "cuda" or (device == "auto" and _gpu_visible())):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for invalid or corrupt models
            raise InvalidInputError(f"{self.path} is not a loadable ONNX model: {exc}") from exc
        # The provider list is what was asked for; the session says what actually runs.
        self.providers = self.session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise ModelMismatchError(f"device='cuda' requested but ONNX Runtime could not use CUDA here (providers: {self.providers})")
        self.name = "onnxruntime-cuda" if self.providers[0] == "CUDAExecutionProvider" else "onnxruntime-cpu"
        self.metadata = read_onnx_metadata(self.session)
        self.config = contract.config_from_metadata(self.metadata, self.path)
        self.precision = self.metadata.get(contract.META_PRECISION, "fp32")
        if self.precision == "int8":  # a static int8 (QDQ) engine: say so in pipe.backend
            self.name += "-int8"
        names = {i.name for i in self.session.get_inputs()}
        if names != {contract.INPUT_X, contract.INPUT_T}:
            raise ModelMismatchError(f"{self.path}: expected inputs {{x, t}}, found {sorted(names)}")
        log.info("loaded %s (%s) with providers %s", self.path, self.precision, self.providers)

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if self.name.startswith("onnxruntime-cuda"):
            return self._run(x, t)
        return run_in_chunks(self._run, x, t)

    def _run(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.session.run([contract.OUTPUT], {contract.INPUT_X: x, contract.INPUT_T: t})[0]
