"""Export the encoder as an ahead-of-time compiled PyTorch engine: an AOTInductor package (`.pt2`).

On CUDA the package is fp16 (fp16.py: fp16 weights and compute, GroupNorm/attention and the preconditioning
combination in fp32, fp32 inputs/outputs); on CPU it is fp32. `torch.export` traces the encoder with a
dynamic batch dimension (1..max_batch), `torch._inductor.aoti_compile_and_package` compiles it, and the result
is loaded by backends/compiled_backend.py with `aoti_load_package`, without the training code. The package
is parity-gated (fp16: PSNR >= 40 dB; fp32: max abs error <= 1e-4; no NaN/inf) against the fp32 PyTorch
encoder on the CPU before it and its `<engine>.json` sidecar land.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from .. import contract
from .._optional import require
from ..atomic import atomic_output
from ..errors import InvalidInputError, ModelMismatchError
from .metadata import engine_metadata, sidecar_document, write_sidecar
from .parity import ParityReport, check_parity, describe_gate, enforce_gate

log = logging.getLogger(__name__)


def export_program(module: Any, resolution: int, device: str, max_batch: int) -> Any:
    """torch.export of `module` (x [B,1,R,R], t [B]) with B dynamic in 1..max_batch."""
    torch = require("torch")
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    example = (torch.randn(2, 1, resolution, resolution, device=device), torch.ones(2, device=device))
    with torch.no_grad():
        return torch.export.export(module, example, dynamic_shapes={"x": {0: batch}, "t": {0: batch}})


def export_compiled(model_dir: str | Path, out_path: str | Path | None = None, device: str = "cuda",
                    precision: str | None = None, max_batch: int = max(contract.BATCH_BUCKETS), gate: bool = True,
                    inductor_configs: dict[str, Any] | None = None) -> tuple[Path, ParityReport | None]:
    """Write `model_dir`'s encoder as an AOTInductor package (default model_dir/model.pt2) plus its sidecar.

    device: "cuda" (the GPU engine, fp16 by default) or "cpu" (fp32 by default). precision: "fp16" or "fp32".
    inductor_configs: passed to aoti_compile_and_package (e.g. {"max_autotune": True}: faster, much longer
    compile). The package runs only where the device kind, GPU compute capability and torch major.minor match.
    """
    torch = require("torch")
    from ..backends.compiled_backend import CompiledEncoder, torch_environment
    from ..backends.torch_backend import TorchEncoder

    if device not in ("cuda", "cpu"):
        raise InvalidInputError(f"device must be 'cuda' or 'cpu' for a compiled engine, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelMismatchError("a CUDA compiled engine is built on the GPU it will run on, but torch sees no CUDA "
                                 "GPU here; use device='cpu' for a CPU package")
    precision = precision or ("fp16" if device == "cuda" else "fp32")
    if precision not in ("fp16", "fp32"):
        raise InvalidInputError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / contract.COMPILED_FILENAME
    if out_path.suffix != ".pt2":
        raise InvalidInputError(f"a compiled engine's file name must end in .pt2, got {out_path}")
    reference = TorchEncoder(model_dir, device="cpu")  # the gate's exact fp32 reference
    cfg = reference.config
    module = TorchEncoder(model_dir, device=device).module
    if precision == "fp16":
        from .fp16 import half_encoder

        module = half_encoder(module)
    t0 = time.perf_counter()
    program = export_program(module, cfg.resolution, device, max_batch)
    buckets = contract.buckets_up_to(max_batch)
    meta = engine_metadata(cfg, model_dir, precision, "torch-compiled", **{
        contract.META_MAX_BATCH: max_batch,
        contract.META_BATCH_BUCKETS: json.dumps(list(buckets)),
        **torch_environment(device),
    })
    from torch._inductor import aoti_compile_and_package

    with atomic_output(out_path) as tmp:
        aoti_compile_and_package(program, package_path=str(tmp), inductor_configs=inductor_configs or {})
        log.info("compiled %s for %s (%s) in %.1f s", out_path.name, device, precision, time.perf_counter() - t0)
        doc = sidecar_document(meta, tmp)
        report = None
        if gate:
            report = check_parity(CompiledEncoder(tmp, device=device, metadata=doc), reference, cfg.resolution)
            log.info("parity of %s: %s", out_path.name, describe_gate(report, precision))
            enforce_gate(report, precision, f"the compiled engine {out_path.name}")
        write_sidecar(out_path, doc)
    return out_path, report
