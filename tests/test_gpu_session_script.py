"""benchmarks/gpu_session.sh refuses calls that would not fit the device limit or name no stage it knows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_session.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("args", "message"), [
    ([], "usage: bash benchmarks/gpu_session.sh STAGE..."),
    (["tests", "kernal"], "unknown stage 'kernal' (expected one of: tests kernels engines pipeline train)"),
])
def test_gpu_session_needs_known_stages(tmp_path, args, message):
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before it builds or writes anything
