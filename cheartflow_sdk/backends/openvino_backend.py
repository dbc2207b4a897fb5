"""OpenVINO backend (extra `[openvino]`): runs our ONNX engines, or an OpenVINO IR (`.xml` + `.bin`), on the CPU.

Lifecycle, explicit in the class:

1. load: `Core.read_model` reads the file (ONNX directly, no conversion step) and its cheartflow metadata
   (the ONNX metadata_props, which OpenVINO keeps in the model's rt_info under "framework"; an IR written
   by `cheartflow export --format openvino[-int8]` keeps them under "cheartflow"); the IO contract (inputs
   x and t, output x0_hat) is checked;
2. compile: `Core.compile_model` for the CPU with an inference precision hint (bf16 where the CPU computes
   bf16 in hardware, cpu_features.has_native_bf16(), else f32), the latency hint and one thread per usable
   core, with a dynamic batch axis; in bf16 and int8, a batch size up to MAX_STATIC_BATCH that keeps coming
   back (STATIC_AFTER_CALLS calls) then gets its own static-shape compile (up to MAX_STATIC_SHAPES sizes), which OpenVINO runs about 20% faster
   (measured on the 2-core AMD EPYC, bf16, edges model: b1 22.7 -> 18.4 ms, b16 352 -> 287 ms) for about
   1 s of compiling, so one-off calls never pay for it and a stream does once.
   A statically compiled batch that splits evenly over the threads runs as one OpenVINO stream per thread;
3. run: the batch size's static compile, else the dynamic one; numpy float32 in and out.

An int8 IR (NNCF) runs its quantized layers in int8 whatever the hint; the hint applies to the rest.
`name` says what runs, e.g. "openvino-cpu-bf16" (shown as `pipe.backend`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .. import contract
from .._optional import require
from ..cpu_features import has_native_bf16, usable_cores
from ..errors import InvalidInputError, ModelMismatchError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp32")
_OV_TYPE = {"bf16": "bf16", "fp32": "f32"}
STATIC_AFTER_CALLS = 3  # calls with one batch size before it gets its own static-shape compile
MAX_STATIC_SHAPES = 4  # batch sizes with a static-shape compile; others keep running the dynamic one
MAX_STATIC_BATCH = 16  # larger batches stay dynamic: a static batch-64 compile held ~60-90 MB more RSS after warm-up
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
        config = {"INFERENCE_PRECISION_HINT": _OV_TYPE[hint], "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(self.threads)}
        self._compile_config = config
        try:
            self.compiled = self._core.compile_model(self.model, "CPU", config)
        except Exception as exc:
            raise ModelMismatchError(f"OpenVINO could not compile {self.path} for the CPU: {exc}") from exc
        self._static_runners: dict[int, _RequestRunner | _StreamsRunner] = {}  # batch size -> its static compile
        self._calls_per_batch: Counter[int] = Counter()
        self._refused_batches: set[int] = set()  # sizes OpenVINO would not compile statically: never retried
        self.inference_precision = hint
        self.precision = "int8" if self.engine_precision == "int8" else hint
        # OpenVINO reorders fp32 arithmetic too (measured 2e-4 max abs error, 105 dB), so every precision it runs
        # is held to the reduced-precision gate (parity.REDUCED_MIN_PSNR_DB) rather than fp32's 1e-4.
        self.gate_precision = "int8" if self.precision == "int8" else "reduced"
        self.name = f"openvino-cpu-{self.precision}"
        self._dynamic = _RequestRunner(self.compiled)  # every batch size the static compiles do not take
        log.info("compiled %s for the CPU: %s (inference precision %s, %d threads)", self.path, self.name, hint,
                 self.threads)

    # ------------------------------------------------------------------ 3. run

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        r = self.config.resolution
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (1, r, r) or t.shape != (x.shape[0],):
            raise InvalidInputError(f"expected x [B, 1, {r}, {r}] and t [B], got x {x.shape} and t {t.shape}")
        if len(x) == 0:
            return np.zeros((0, 1, r, r), np.float32)
        return self._runner_for(len(x))(x, t)

    @property
    def static_batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes that run a static-shape compile (the rest run the dynamic one)."""
        return tuple(sorted(self._static_runners))

    @property
    def streams_per_batch(self) -> dict[int, int]:
        """OpenVINO streams each statically compiled batch size runs on (1: one request on every thread)."""
        return {batch: runner.streams for batch, runner in sorted(self._static_runners.items())}

    def prepare_batch_sizes(self, batch_sizes: Iterable[int]) -> None:
        """Compile these batch sizes with static shapes now (bf16/int8, batches up to MAX_STATIC_BATCH, up to
        MAX_STATIC_SHAPES sizes in all), so a stream
        of them never pays for it on a request (`Pipeline.warmup(batch_sizes=...)` calls this)."""
        for batch in batch_sizes:
            if batch not in self._static_runners and self._may_compile_static(int(batch)):
                self._compile_static(int(batch))

    def _may_compile_static(self, batch: int) -> bool:
        return (self.precision in STATIC_PRECISIONS and batch <= MAX_STATIC_BATCH
                and batch not in self._refused_batches and len(self._static_runners) < MAX_STATIC_SHAPES)

    def _runner_for(self, batch: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """What runs a batch of `batch`: its static-shape compile once the size keeps coming back, else the
        dynamic one."""
        if batch in self._static_runners:
            return self._static_runners[batch]
        self._calls_per_batch[batch] += 1
        if self._calls_per_batch[batch] >= STATIC_AFTER_CALLS and self._may_compile_static(batch):
            return self._compile_static(batch)
        return self._dynamic

    def _compile_static(self, batch: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """Compile `batch` with a static shape and keep its runner; the dynamic one if OpenVINO refuses.

        A batch that splits evenly over the threads (at least 2 images a thread) runs as that many OpenVINO
        streams of one thread each, each on its share of the batch (measured +16% images/s at batch 16 on the
        2-core EPYC: small layers keep one thread busier than they keep two); other sizes run one request on
        every thread, with the latency hint."""
        streams = self.threads if self.threads > 1 and batch % self.threads == 0 and batch >= 2 * self.threads else 1
        r, share = self.config.resolution, batch // streams
        model = self.model.clone()
        model.reshape({contract.INPUT_X: [share, 1, r, r], contract.INPUT_T: [share]})
        config = dict(self._compile_config)
        if streams > 1:
            config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams})
        try:
            compiled = self._core.compile_model(model, "CPU", config)
        except Exception as exc:  # keep serving from the dynamic compile, which works for this shape
            log.warning("OpenVINO could not compile %s for batch %d with a static shape (%s); "
                        "staying on the dynamic shape", self.path, batch, exc)
            self._refused_batches.add(batch)
            return self._dynamic
        runner = _StreamsRunner(compiled, streams, share) if streams > 1 else _RequestRunner(compiled)
        self._static_runners[batch] = runner
        log.info("compiled %s for batch %d with a static shape (%d stream(s))", self.path, batch, streams)
        return runner


class _RequestRunner:
    """The whole batch on one infer request (all threads, latency hint)."""

    streams = 1

    def __init__(self, compiled: Any):
        self.request = compiled.create_infer_request()

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        result = self.request.infer({contract.INPUT_X: x, contract.INPUT_T: t})
        return np.array(result[contract.OUTPUT], dtype=np.float32, copy=True)  # never a view of the request's buffer


class _StreamsRunner:
    """A batch split into equal shares, one per OpenVINO stream, run at once (AsyncInferQueue)."""

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
        self._out = np.empty(x.shape, np.float32)
        for i in range(len(x) // self.share):
            part = slice(i * self.share, (i + 1) * self.share)
            self.queue.start_async({contract.INPUT_X: x[part], contract.INPUT_T: t[part]}, i)
        self.queue.wait_all()
        out, self._out = self._out, None
        return out
