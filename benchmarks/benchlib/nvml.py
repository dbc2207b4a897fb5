"""GPU memory, power and utilization sampled on a thread through NVML (nvidia-ml-py), tagged by phase."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np


class NvmlSampler:
    """GPU memory, power and utilization sampled on a thread through NVML (nvidia-ml-py), tagged by phase."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.phase = "idle"
        self.samples: list[tuple[str, float, float, float]] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = self._find_handle(pynvml)
        except Exception as exc:
            self._nvml = None
            self.error = f"NVML unavailable ({type(exc).__name__}: {exc}); install nvidia-ml-py"

    @staticmethod
    def _find_handle(pynvml: Any) -> Any:
        import torch

        try:  # the CUDA device 0 of this process, whatever CUDA_VISIBLE_DEVICES says
            uuid = str(torch.cuda.get_device_properties(0).uuid)
            return pynvml.nvmlDeviceGetHandleByUUID(("GPU-" + uuid).encode())
        except Exception:
            return pynvml.nvmlDeviceGetHandleByIndex(0)

    @property
    def ok(self) -> bool:
        return self._nvml is not None

    def start(self) -> None:
        if self.ok:
            self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        nv, h = self._nvml, self._handle
        while not self._stop.is_set():
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(h).used / 2**20
                power = nv.nvmlDeviceGetPowerUsage(h) / 1e3
                util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                self.samples.append((self.phase, mem, power, util))
            except Exception as exc:
                self.error = f"NVML sampling stopped: {exc}"
                return
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.ok:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass

    def summary(self, prefix: str = "") -> dict[str, float]:
        rows = [s for s in self.samples if s[0].startswith(prefix)]
        if not rows:
            return {}
        mem, power, util = (np.asarray([r[i] for r in rows]) for i in (1, 2, 3))
        return {"samples": len(rows), "mem_used_max_mb": float(mem.max()), "power_mean_w": float(power.mean()),
                "power_max_w": float(power.max()), "util_mean_pct": float(util.mean()), "util_max_pct": float(util.max())}
