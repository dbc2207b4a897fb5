"""What the host CPU can do natively (bf16 arithmetic), read once from the OS."""

from __future__ import annotations

import functools
import os
from pathlib import Path

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 flags of hardware bf16 dot products


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the Linux kernel reports (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def has_native_bf16() -> bool:
    """True when the CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX), where bf16 beats fp32."""
    override = os.environ.get("CHEARTFLOW_NATIVE_BF16")
    if override is not None:
        return override not in ("0", "false", "no")
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def isa_class() -> str:
    """The CPU's class for int8/bf16 kernels, most capable first: "amx", "avx512_vnni", "avx_vnni", "avx512",
    "avx2" or "baseline". Reduced-precision engines record the class their quality gate passed on: int8 and
    bf16 kernels (and so their rounding) differ between classes, not between CPUs of one class."""
    flags = cpu_flags()
    for name, needs in (("amx", {"amx_int8", "amx_bf16"}), ("avx512_vnni", {"avx512_vnni"}), ("avx_vnni", {"avx_vnni"}),
                        ("avx512", {"avx512f"}), ("avx2", {"avx2"})):
        if needs & flags:
            return name
    return "baseline"
