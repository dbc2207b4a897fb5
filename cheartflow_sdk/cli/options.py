"""What several commands parse alike: `--set FIELD=VALUE` overrides, `--schedule`, the run-length options."""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection, Sequence
from typing import Any

from ..errors import CheartflowError, InvalidInputError


def parse_value(raw: str) -> Any:
    """A `--set` value: JSON when it parses (numbers, booleans, lists), a comma list, else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        if "," in raw:
            return [parse_value(part) for part in raw.split(",")]
        return raw


def parse_overrides(items: Sequence[str], fields: Collection[str], prefixes: Sequence[str] = ()) -> dict[str, Any]:
    """{field: value} of `--set FIELD=VALUE` items, each FIELD one of `fields` (after removing any of `prefixes`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        if not sep or key not in fields:
            raise CheartflowError(f"--set expects FIELD=VALUE with FIELD one of {sorted(fields)}; got {item!r}")
        out[key] = parse_value(raw)
    return out


def run_length(args: argparse.Namespace) -> dict[str, Any]:
    """The `--steps` / `--batch-size` a training command was given, as config overrides."""
    return {key: getattr(args, key) for key in ("steps", "batch_size") if getattr(args, key)}


def add_training_options(p: argparse.ArgumentParser, set_help: str, steps_help: str | None = None,
                         time_limit_help: str | None = None, resume: bool = True,
                         resume_help: str | None = None) -> None:
    """--set, --steps, --batch-size, --device, --time-limit (and --no-resume) of the training commands."""
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help=set_help)
    p.add_argument("--steps", type=int, help=steps_help)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--time-limit", type=float, help=time_limit_help)
    if resume:
        p.add_argument("--no-resume", action="store_true", help=resume_help)


def parse_schedule(raw: str | None):
    """`--schedule 0.7,0.4` as a tuple of re-noise times (None when not given)."""
    if raw is None:
        return None
    try:
        return tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise InvalidInputError(f"--schedule: expected comma-separated re-noise times in (0, 1), e.g. 0.5 or "
                                f"0.7,0.4; got {raw!r}") from None
