"""`cheartflow` command line: a thin layer over the Python API (train, export, synth, demo).

One module per command group (train, evaluate, data, export, synth, demo), each registering its
subcommands; `options` holds what they share (the one `--set FIELD=VALUE` parser, `--schedule`).
"""

from __future__ import annotations

import logging
from typing import Sequence

from ..errors import CheartflowError
from .data import load_split, load_training_set
from .parser import make_parser
from .train import PRESETS, build_configs

__all__ = ["PRESETS", "build_configs", "load_split", "load_training_set", "main", "make_parser"]

log = logging.getLogger("cheartflow")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cheartflow` command; returns the exit status."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CheartflowError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
