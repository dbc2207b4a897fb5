"""The step loop every trainer shares (cHeartFlow, the baselines, the segmenter), and its metrics log.

The loop shows progress, logs every `log_every` steps, checkpoints every `checkpoint_every` steps and
stops early at a time limit, so long runs go in resumable chunks; `metrics.jsonl` holds one JSON line
per logged step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

METRICS_FILENAME = "metrics.jsonl"
R = TypeVar("R")


def run_steps(step: Callable[[], R], *, done: int, until: int, log_every: int, checkpoint_every: int,
              on_log: Callable[[R], dict[str, str]], checkpoint: Callable[[], Any],
              time_limit_s: float | None = None, progress: bool = True, desc: str = "train") -> list[R]:
    """Call ``step()`` from step ``done`` until ``until`` or until ``time_limit_s`` seconds have passed.

    ``step()`` returns a result whose ``.step`` is the count after it. ``on_log(result)`` runs every
    ``log_every`` steps and at ``until`` and returns the progress bar's postfix; ``checkpoint()`` runs
    every ``checkpoint_every`` steps (0: never) before ``until``. The caller saves once more after it.
    """
    start, results = time.monotonic(), []
    bar = tqdm(total=until, initial=done, disable=not progress, desc=desc, unit="step")
    try:
        while done < until:
            res = step()
            done = res.step
            results.append(res)
            bar.update(1)
            if done % log_every == 0 or done == until:
                bar.set_postfix(on_log(res))
            if checkpoint_every and done % checkpoint_every == 0 and done != until:
                checkpoint()
            if time_limit_s is not None and time.monotonic() - start > time_limit_s:
                log.info("time limit reached at step %d; the state so far is saved, rerun to resume", done)
                break
    finally:
        bar.close()
    return results


def append_metrics(out_dir: str | Path, result: Any) -> None:
    """Append one step result (a dataclass) with the wall-clock time to ``out_dir/metrics.jsonl``."""
    with open(Path(out_dir) / METRICS_FILENAME, "a") as f:
        f.write(json.dumps({**dataclasses.asdict(result), "time": time.time()}) + "\n")


def truncate_metrics(out_dir: str | Path, step: int) -> None:
    """Drop the lines after ``step`` (a run resumed from an earlier state would log them again)."""
    path = Path(out_dir) / METRICS_FILENAME
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def device_label(device: torch.device) -> str:
    """What a run's config records as the hardware it trained on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
