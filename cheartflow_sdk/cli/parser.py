"""The argument parser of the `cheartflow` command: each command group adds its subcommands."""

from __future__ import annotations

import argparse
import functools

from . import data, demo, evaluate, export, synth, train

COMMAND_GROUPS = (train, evaluate, data, export, synth, demo)  # the order of `cheartflow --help`


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the `cheartflow` command."""
    p = argparse.ArgumentParser(prog="cheartflow", description="Sketch-to-cardiac-MR synthesis (cHeartFlow).")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", required=True)
    # every command's --help shows each option's default
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return p
