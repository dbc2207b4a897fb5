"""OpenVINO backend (extra `[openvino]`): runs our ONNX engines, or an OpenVINO IR (`.xml` + `.bin`), on the CPU.

Lifecycle, explicit in the class:

1. load: `Core.read_model` reads the file (ONNX directly, no conversion step) and its cheartflow metadata
   (the ONNX metadata_props, which OpenVINO keeps in the model's rt_info under "framework"; an IR written
   by `cheartflow export --format openvino[-int8]` keeps them under "cheartflow"); the IO contract (inputs
   x and t, output x0_hat) is checked;
2. compile: `Core.compile_model` for the CPU with an inference precision hint (bf16 where the CPU computes
   bf16 in hardware, cpu_features.has_native_bf16(), else f32) and one thread per usable core. In bf16 and
   int8 it compiles static-shape graphs, which OpenVINO runs about 20% faster than a dynamic batch axis:
   at load, one image on every thread (the latency hint); with more than one thread, on the first batch of
   two or more images, CHUNK images per OpenVINO stream with one stream per thread (the throughput hint).
   That second graph is compiled when first needed because it costs about as much memory as the first
   (int8 edges model on a 2-core AVX2 EPYC: ~125 MB for the 1-image graph, ~140 MB for 2 streams x 2 images),
   which a caller sending single images never pays. fp32 gets one dynamic-batch compile instead (OpenVINO
   2026.4 crashes compiling our fp32 IR with a static batch), as does any model OpenVINO will not compile
   statically;
3. run: a single image on the latency graph; a batch as chunks of CHUNK images spread over the streams (an
   odd last image on the latency graph); numpy float32 in and out. Every batch size runs on the same two
   compiled graphs, so memory does not grow with the sizes a stream sends (chunks of 2, 4 or 8 gave the
   same images/s at batch 16 on the 2-core AMD EPYC). On the dynamic batch axis a batch runs in chunks of
   chunking.CPU_CHUNK images, so memory stays that of a few images there too.

An int8 IR (NNCF) runs its quantized layers in int8 whatever the hint; the hint applies to the rest.
`name` says what runs, e.g. "openvino-cpu-bf16" (shown as `pipe.backend`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .. import contract
from .._optional import require
from ..cpu_features import has_native_bf16, usable_cores
from ..errors import InvalidInputError, ModelMismatchError
from .chunking import run_in_chunks

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp32")
_OV_TYPE = {"bf16": "bf16", "fp32": "f32"}
CHUNK = 2  # images per stream request of a multi-image batch (2, 4 and 8 measured level at batch 16; 2 needs least memory)
# OpenVINO 2026.4 crashes (SIGSEGV, uncatchable) compiling our fp32 IR (one GroupNormalization op per GroupNorm)
# with a static batch, so only the reduced-precision hints, where it was measured to work, get static shapes.
STATIC_PRECISIONS = ("bf16", "int8")
METADATA_SECTION = "cheartflow"  # rt_info section of an IR written by export (ONNX metadata sits in "framework")


def read_metadata(model: Any) -> dict[str, str]:
    """The cheartflow metadata of an OpenVINO model: the ONNX metadata_props ("framework" rt_info), then the
    keys export wrote into the "cheartflow" section (an IR's own precision and format win)."""
    meta: dict[str, str] = {}
    for section in ("framework", METADATA_SECTION):
        if not model.has_rt_info([section]):
            continue
        value = model.get_rt_info()[section]
        entries = value if isinstance(value, dict) else value.astype(dict)
        for key, item in entries.items():
            if str(key).startswith("cheartflow."):
                meta[str(key)] = item.astype(str) if hasattr(item, "astype") else str(item)
    return meta


def write_metadata(model: Any, meta: dict[str, str]) -> None:
    """Store `meta` in the model's "cheartflow" rt_info section (saved with the IR)."""
    for key, value in meta.items():
        model.set_rt_info(str(value), [METADATA_SECTION, key])


def runtime_precision(requested: str, engine_precision: str, gated_ir: bool = False) -> str:
    """The inference precision to compile with: "bf16" or "fp32".

    "auto": bf16 where the CPU has native bf16, else fp32; except an IR that export gated in fp32 only
    (`gated_ir` with engine precision "fp32": it was exported on a CPU without native bf16), which stays fp32.
    An explicit "bf16" on a CPU without native bf16 is refused (OpenVINO would silently run fp32).
    """
    if requested not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "bf16" and not has_native_bf16():
        raise ModelMismatchError("precision='bf16' asked, but this CPU has no native bf16 (AVX512-BF16 or AMX); "
                                 "use precision='auto' or 'fp32'")
    if requested != "auto":
        return requested
    if gated_ir and engine_precision == "fp32":
        return "fp32"
    return "bf16" if has_native_bf16() else "fp32"


class OpenVINOEncoder:
    """An .onnx engine or an OpenVINO IR (.xml) compiled for the CPU; numpy float32 in and out.

    precision: "auto" (bf16 where the CPU has it natively, else fp32), "bf16" or "fp32" (the inference
    precision hint; an int8 IR keeps its int8 layers). `self.precision` is what runs: "bf16", "fp32" or
    "int8" (an int8 IR); `self.engine_precision` what the file holds.
    """

    def __init__(self, path: str | Path, device: str = "auto", precision: str = "auto", threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"expected an ONNX (.onnx) or OpenVINO IR (.xml) engine file at {self.path}")
        if self.path.suffix.lower() not in (".onnx", ".xml"):
            raise InvalidInputError(f"{self.path}: the OpenVINO backend reads .onnx or OpenVINO IR .xml files")
        if str(device).split(":")[0] not in ("auto", "cpu"):
            raise ModelMismatchError(f"the OpenVINO backend runs on the CPU; device={device!r} was asked "
                                     "(use device='cpu', or another backend for a GPU)")
        self.threads = threads or usable_cores()
        self._load()
        self._compile(precision)

    # ------------------------------------------------------------------ 1. load

    def _load(self) -> None:
        ov = require("openvino")
        self._core = ov.Core()
        try:
            self.model = self._core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for corrupt or foreign files
            raise InvalidInputError(f"{self.path} is not a loadable ONNX / OpenVINO IR model: {exc}") from exc
        self.metadata = read_metadata(self.model)
        self.config = contract.config_from_metadata(self.metadata, self.path)
        self.engine_precision = self.metadata.get(contract.META_PRECISION, "fp32")
        inputs = {name for port in self.model.inputs for name in port.get_names()}
        outputs = {name for port in self.model.outputs for name in port.get_names()}
        if not {contract.INPUT_X, contract.INPUT_T} <= inputs or len(self.model.inputs) != 2:
            raise ModelMismatchError(f"{self.path}: expected inputs {{x, t}}, found {sorted(inputs)}")
        if contract.OUTPUT not in outputs:
            raise ModelMismatchError(f"{self.path}: expected the output {contract.OUTPUT!r}, found {sorted(outputs)}")

    # ------------------------------------------------------------------ 2. compile

    def _compile(self, precision: str) -> None:
        hint = runtime_precision(precision, self.engine_precision, gated_ir=self.path.suffix.lower() == ".xml")
        self._base_config = {"INFERENCE_PRECISION_HINT": _OV_TYPE[hint], "INFERENCE_NUM_THREADS": int(self.threads)}
        self.inference_precision = hint
        self.precision = "int8" if self.engine_precision == "int8" else hint
        # OpenVINO reorders fp32 arithmetic too (measured 2e-4 max abs error, 105 dB), so every precision it runs
        # is held to the reduced-precision gate (parity.REDUCED_MIN_PSNR_DB) rather than fp32's 1e-4.
        self.gate_precision = "int8" if self.precision == "int8" else "reduced"
        self.name = f"openvino-cpu-{self.precision}"
        self._single: _RequestRunner | None = None  # one image, static shape, every thread
        self._streams: _StreamsRunner | None = None  # CHUNK images per stream, one stream per thread
        self._streams_planned = False  # compiled on the first batch of two or more images
        self._dynamic: _RequestRunner | None = None  # any batch, dynamic batch axis
        if self.precision in STATIC_PRECISIONS:
            self._compile_static()
        if self._single is None:
            self._dynamic = _RequestRunner(self._compile_for(self.model, "LATENCY"))
        log.info("compiled %s for the CPU: %s (inference precision %s, %d threads, %s)", self.path, self.name, hint,
                 self.threads, self.layout)

    def _compile_for(self, model: Any, hint: str, streams: int = 1) -> Any:
        config = {**self._base_config, "PERFORMANCE_HINT": hint}
        if hint == "THROUGHPUT":
            config["NUM_STREAMS"] = streams
        try:
            return self._core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise ModelMismatchError(f"OpenVINO could not compile {self.path} for the CPU: {exc}") from exc

    def _static_model(self, batch: int) -> Any:
        r = self.config.resolution
        model = self.model.clone()
        model.reshape({contract.INPUT_X: [batch, 1, r, r], contract.INPUT_T: [batch]})
        return model

    def _compile_static(self) -> None:
        """The latency graph now, and with more than one thread the streams graph later (_streams_graph); on a
        refusal neither, and the dynamic compile serves every batch."""
        try:
            self._single = _RequestRunner(self._compile_for(self._static_model(1), "LATENCY"))
            self._streams_planned = self.threads > 1
        except ModelMismatchError as exc:  # the dynamic compile works for every shape
            log.warning("%s; staying on a dynamic batch axis", exc)
            self._single = None

    def _streams_graph(self) -> _StreamsRunner | None:
        """The streams graph, compiled on first use; None where there is none (one thread, or OpenVINO refused
        it: batches then run image by image on the latency graph)."""
        if self._streams is None and self._streams_planned:
            self._streams_planned = False
            try:
                compiled = self._compile_for(self._static_model(CHUNK), "THROUGHPUT", self.threads)
                self._streams = _StreamsRunner(compiled, self.threads, CHUNK)
            except ModelMismatchError as exc:
                log.warning("%s; batches run image by image on the 1-image graph", exc)
        return self._streams

    @property
    def layout(self) -> str:
        """How batches run: "static: 1 image + 2 streams x 2 images" (the streams graph compiled on the first
        batch of two or more images), "static: 1 image" or "dynamic batch"."""
        if self._single is None:
            return "dynamic batch"
        if self._streams is None and not self._streams_planned:
            return "static: 1 image"
        return f"static: 1 image + {self.threads} streams x {CHUNK} images"

    # ------------------------------------------------------------------ 3. run

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        r = self.config.resolution
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (1, r, r) or t.shape != (x.shape[0],):
            raise InvalidInputError(f"expected x [B, 1, {r}, {r}] and t [B], got x {x.shape} and t {t.shape}")
        if len(x) == 0:
            return np.zeros((0, 1, r, r), np.float32)
        if self._single is None:
            assert self._dynamic is not None
            return run_in_chunks(self._dynamic, x, t)
        if len(x) == 1:
            return self._single(x, t)
        streams = self._streams_graph()
        if streams is None:
            return run_in_chunks(self._single, x, t, chunk=1)
        even = len(x) - len(x) % CHUNK
        out = streams(x[:even], t[:even])
        if even < len(x):
            out = np.concatenate([out, self._single(x[even:], t[even:])])
        return out


class _RequestRunner:
    """The whole batch on one infer request (all threads, latency hint)."""

    streams = 1

    def __init__(self, compiled: Any):
        self.request = compiled.create_infer_request()

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        result = self.request.infer({contract.INPUT_X: x, contract.INPUT_T: t})
        return np.array(result[contract.OUTPUT], dtype=np.float32, copy=True)  # never a view of the request's buffer


class _StreamsRunner:
    """A batch cut into chunks of `share` images, run on `streams` OpenVINO streams at once (AsyncInferQueue
    hands each chunk to the next free stream)."""

    def __init__(self, compiled: Any, streams: int, share: int):
        from openvino import AsyncInferQueue

        self.streams, self.share = streams, share
        self.output = compiled.output(contract.OUTPUT)
        self.queue = AsyncInferQueue(compiled, streams)
        self.queue.set_callback(self._collect)
        self._out: np.ndarray | None = None

    def _collect(self, request: Any, index: int) -> None:
        assert self._out is not None
        self._out[index * self.share:(index + 1) * self.share] = request.get_tensor(self.output).data

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """x holds a multiple of `share` images."""
        self._out = np.empty(x.shape, np.float32)
        for i in range(len(x) // self.share):
            part = slice(i * self.share, (i + 1) * self.share)
            self.queue.start_async({contract.INPUT_X: x[part], contract.INPUT_T: t[part]}, i)
        self.queue.wait_all()
        out, self._out = self._out, None
        return out
