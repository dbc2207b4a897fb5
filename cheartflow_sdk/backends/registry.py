"""Which backend opens a model path: the file's kind decides, or `backend=` when given.

* An engine file: `.onnx` -> onnxruntime (or openvino when asked), `.xml` (OpenVINO IR) -> openvino,
  `.engine` / `.plan` -> tensorrt, `.pt2` -> torch-compiled.
* A model folder: whichever engines it holds under the standard names (contract.ENGINE_FILENAMES:
  model.onnx, model.fp16.onnx, model.int8.onnx, model.openvino.xml, model.int8.xml, model.engine, model.pt2),
  or PyTorch from config.json + model.safetensors.
* backend="auto" on a folder tries, fastest first, the engines present and usable on the device:
  - CUDA: tensorrt > torch-compiled (a CUDA package) > onnxruntime-cuda (fp16 ONNX first) > torch > onnxruntime-cpu
  - CPU:  the engine kinds of CPU_ORDER (data, not code: the ranking measured by
    benchmarks/bench_cpu_engines.py, whose report prints it; CHEARTFLOW_CPU_ORDER overrides it). A kind is
    "<backend>-<precision>"; "openvino-bf16" is the OpenVINO IR where the CPU has native bf16 (else it counts
    as "openvino-fp32"). Every engine in a folder passed its export gate; a reduced-precision one (int8,
    bf16) is skipped when its gate ran on another class of CPU (cpu_features.isa_class()).
  An engine that cannot be opened here (missing runtime, built for another GPU or library version) is
  skipped with a warning; the choice is logged and visible as the encoder's `.name` (`pipe.backend`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

from .. import contract
from ..config import CONFIG_FILENAME, read_config
from ..errors import CheartflowError, InvalidInputError, ModelMismatchError, ModelNotAvailableError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt", "torch-compiled", "torch")
ONNX_FILENAME = contract.ONNX_FILENAME

# `auto` on a CPU: engine kinds, fastest first, as measured side by side by benchmarks/bench_cpu_engines.py
# on a 2-core AMD EPYC with AVX512-BF16 (benchmarks/results/cpu-engines-edges-amd-epyc.md, 2026-12-05: engines
# passing the quality bar by batch-16 throughput; ONNX Runtime int8, which its gate refused for that model,
# keeps its place from the AMX Xeon run, where bf16 led). Rerun it on your CPU and paste its order here or
# into CHEARTFLOW_CPU_ORDER.
CPU_ORDER = ("openvino-int8", "openvino-bf16", "onnxruntime-fp32", "torch-compiled-fp32", "onnxruntime-int8",
             "openvino-fp32", "torch-fp32", "onnxruntime-fp16")
CPU_ORDER_ENV = "CHEARTFLOW_CPU_ORDER"  # comma-separated kinds: the only ones `auto` uses on a CPU, in that order
REDUCED_PRECISIONS = ("int8", "bf16")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _use_cuda(device: str) -> bool:
    """Whether `device` means a CUDA GPU (for "auto": one is visible)."""
    if device != "auto":
        return str(device).startswith("cuda")
    from .onnxruntime_backend import _gpu_visible

    return _gpu_visible()


def _compiled_device(pt2: Path) -> str | None:
    """The device a .pt2 package was compiled for, from its sidecar (None when unreadable)."""
    try:
        return json.loads(contract.sidecar_path(pt2).read_text()).get(contract.META_DEVICE, "cuda")
    except (OSError, ValueError, AttributeError):
        return None


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _open(backend: str, file: Path, device: str, threads: int | None = None):
    if backend != "torch":
        _check_unconditioned(file, backend)
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeEncoder

        return OnnxRuntimeEncoder(file, device=device, threads=threads)
    if backend == "openvino":
        from .openvino_backend import OpenVINOEncoder

        return OpenVINOEncoder(file, device=device, threads=threads)
    if threads and backend in ("torch", "torch-compiled"):
        import torch

        torch.set_num_threads(threads)  # torch's intra-op pool is per process
    if backend == "tensorrt":
        from .tensorrt_backend import TensorRTEncoder

        return TensorRTEncoder(file, device=device)
    if backend == "torch-compiled":
        from .compiled_backend import CompiledEncoder

        return CompiledEncoder(file, device=device)
    from .torch_backend import TorchEncoder

    return TorchEncoder(file, device=device)


def _check_unconditioned(file: Path, backend: str) -> None:
    """Engines take (x, t) only: a sketch-conditioned model runs on backend 'torch' (its engines are not built)."""
    try:
        conditioned = read_config(file.parent)[0].sketch_condition
    except InvalidInputError:  # an engine file without a readable model folder around it
        return
    if conditioned:
        raise ModelNotAvailableError(f"{file.parent} holds a sketch-conditioned model (ModelConfig.sketch_condition): "
                                     f"it runs on backend='torch' only, not {backend!r}")


def _onnx_files(folder: Path, cuda: bool) -> list[Path]:
    """The folder's ONNX engines in preference order: fp16 first on CUDA, fp32 first on CPU."""
    names = [contract.ONNX_FP16_FILENAME, contract.ONNX_FILENAME] if cuda else [contract.ONNX_FILENAME, contract.ONNX_FP16_FILENAME]
    return [folder / n for n in names if (folder / n).is_file()]


def candidates(folder: Path, device: str) -> list[tuple[str, Path, str]]:
    """(backend, path, device) of every encoder `auto` may open in `folder`, fastest first (see the module doc)."""
    cuda = _use_cuda(device)
    has_torch = (folder / CONFIG_FILENAME).is_file()
    pt2 = folder / contract.COMPILED_FILENAME
    pt2_device = _compiled_device(pt2) if pt2.is_file() else None
    out: list[tuple[str, Path, str]] = []
    if cuda:
        for name in (contract.TENSORRT_FILENAME, "model.plan"):
            if (folder / name).is_file() and _installed("tensorrt"):
                out.append(("tensorrt", folder / name, "cuda"))
                break
        if pt2_device == "cuda" and _installed("torch"):
            out.append(("torch-compiled", pt2, "cuda"))
        if _ort_has_cuda():
            out += [("onnxruntime", f, "cuda") for f in _onnx_files(folder, cuda=True)[:1]]
        if has_torch and _installed("torch"):
            out.append(("torch", folder, device))
        out += [("onnxruntime", f, "cpu") for f in _onnx_files(folder, cuda=False)[:1]]
    else:
        engines = _cpu_engines(folder, pt2_device, has_torch, device)
        out += [engines[kind] for kind in cpu_order() if kind in engines]
    return out


def cpu_order() -> tuple[str, ...]:
    """The CPU ranking `auto` uses: CHEARTFLOW_CPU_ORDER when set (checked), else CPU_ORDER."""
    raw = os.environ.get(CPU_ORDER_ENV, "").strip()
    if not raw:
        return CPU_ORDER
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in CPU_ORDER]
    if unknown:
        raise InvalidInputError(f"{CPU_ORDER_ENV}: unknown engine kinds {unknown}; expected some of {CPU_ORDER}")
    return kinds


def _cpu_engines(folder: Path, pt2_device: str | None, has_torch: bool, device: str) -> dict[str, tuple[str, Path, str]]:
    """kind ("<backend>-<precision>") -> (backend, path, device) of every CPU engine `folder` offers here."""
    from ..cpu_features import has_native_bf16

    def present(name: str) -> bool:
        return (folder / name).is_file()

    out: dict[str, tuple[str, Path, str]] = {}
    openvino = _installed("openvino")
    if openvino and present(contract.OPENVINO_INT8_FILENAME):
        out["openvino-int8"] = ("openvino", folder / contract.OPENVINO_INT8_FILENAME, "cpu")
    if present(contract.ONNX_INT8_FILENAME):
        out["onnxruntime-int8"] = ("onnxruntime", folder / contract.ONNX_INT8_FILENAME, "cpu")
    if openvino and present(contract.OPENVINO_FILENAME):
        kind = "openvino-bf16" if has_native_bf16() else "openvino-fp32"
        out[kind] = ("openvino", folder / contract.OPENVINO_FILENAME, "cpu")
    onnx = _onnx_files(folder, cuda=False)[:1]  # fp32 first; the fp16 ONNX only when there is no fp32 one
    if onnx:
        out["onnxruntime-fp32" if onnx[0].name == contract.ONNX_FILENAME else "onnxruntime-fp16"] = ("onnxruntime", onnx[0], "cpu")
    if pt2_device == "cpu" and _installed("torch"):
        out["torch-compiled-fp32"] = ("torch-compiled", folder / contract.COMPILED_FILENAME, "cpu")
    if has_torch:
        out["torch-fp32"] = ("torch", folder, device)
    return out


def gated_elsewhere(encoder) -> str | None:
    """Why a reduced-precision (int8/bf16) encoder's export gate does not vouch for this CPU, or None when it does.

    Its gate recorded the CPU class it ran on (contract.META_CPU_ISA); int8 and bf16 kernels differ by class.
    """
    from ..cpu_features import isa_class

    if getattr(encoder, "precision", None) not in REDUCED_PRECISIONS:
        return None
    recorded = getattr(encoder, "metadata", {}).get(contract.META_CPU_ISA)
    here = isa_class()
    if recorded and recorded != here:
        return (f"its {encoder.precision} quality gate ran on a {recorded} CPU, this one is {here}; "
                "run `cheartflow verify` on it here, or re-export it on this machine")
    return None


def _open_auto(folder: Path, device: str, threads: int | None = None):
    tried: list[str] = []
    first_error: CheartflowError | None = None
    for backend, file, dev in candidates(folder, device):
        try:
            encoder = _open(backend, file, dev, threads)
            elsewhere = gated_elsewhere(encoder)
            if elsewhere:
                raise ModelMismatchError(f"{file.name}: {elsewhere}")
        except CheartflowError as exc:
            log.warning("backend auto: skipping %s (%s): %s", backend, file.name, exc)
            tried.append(f"{backend} ({file.name}): {exc}")
            first_error = first_error or exc
            continue
        log.info("backend auto chose %s for %s (from %s, device %s)", encoder.name, folder, file.name, dev)
        return encoder
    if first_error is not None:
        raise first_error
    raise ModelNotAvailableError(
        f"{folder} holds no usable engine or checkpoint for device {device!r}: expected one of "
        f"{sorted(contract.ENGINE_FILENAMES.values())} or {CONFIG_FILENAME} + model.safetensors "
        "(`cheartflow train`, then `cheartflow export`)"
    )


def _open_in_folder(folder: Path, backend: str, device: str, threads: int | None = None):
    """An explicit backend on a model folder: its standard engine file (or the checkpoint for torch)."""
    if backend == "torch":
        if not (folder / CONFIG_FILENAME).is_file():
            raise ModelNotAvailableError(f"backend 'torch' needs a model folder with {CONFIG_FILENAME} and "
                                         f"model.safetensors, got {folder}")
        return _open("torch", folder, device, threads)
    if backend == "onnxruntime":
        files = _onnx_files(folder, cuda=_use_cuda(device))
        if not files:
            raise ModelNotAvailableError(f"no ONNX engine at {folder / ONNX_FILENAME}; create it with `cheartflow export {folder}`")
        return _open(backend, files[0], device, threads)
    if backend == "openvino":  # its IR (gated at export) first, else the fp32 ONNX read directly
        files = [folder / n for n in (contract.OPENVINO_FILENAME, ONNX_FILENAME) if (folder / n).is_file()]
        if not files:
            raise ModelNotAvailableError(f"no engine for openvino in {folder}: expected {contract.OPENVINO_FILENAME} "
                                         f"(`cheartflow export {folder} --format openvino`) or {ONNX_FILENAME}")
        return _open(backend, files[0], device, threads)
    name = contract.TENSORRT_FILENAME if backend == "tensorrt" else contract.COMPILED_FILENAME
    fmt = "tensorrt" if backend == "tensorrt" else "torch-compiled"
    if not (folder / name).is_file():
        raise ModelNotAvailableError(f"no {backend} engine at {folder / name}; create it with "
                                     f"`cheartflow export {folder} --format {fmt}`")
    return _open(backend, folder / name, device, threads)


def open_encoder(path: Path, backend: str, device: str, threads: int | None = None):
    """An encoder for `path` (a run folder or an engine file) on `device`; it exposes .config and .name.

    backend: "auto" (the file's kind; for a folder the fastest usable engine, see the module doc),
    "onnxruntime", "openvino", "tensorrt", "torch-compiled" or "torch". device: "auto", "cpu" or "cuda".
    threads: CPU threads of the engine (None: the engine's default).
    """
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = Path(path)
    if path.is_file():
        kind = contract.engine_backend(path)
        if kind is None:
            raise InvalidInputError(f"{path}: expected a model folder or an .onnx, .engine/.plan or .pt2 engine file "
                                    "(or an OpenVINO IR .xml)")
        if backend not in ("auto", *contract.engine_backends(path)):
            raise InvalidInputError(f"{path} is a {kind} engine; backend={backend!r} cannot open it "
                                    f"(use backend='auto' or {kind!r}, or pass the model folder)")
        encoder = _open(kind if backend == "auto" else backend, path, device, threads)
    elif backend == "auto":
        return _open_auto(path, device, threads)
    else:
        encoder = _open_in_folder(path, backend, device, threads)
    log.info("backend %s opened %s", encoder.name, path)
    return encoder

