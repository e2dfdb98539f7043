"""The subcommands of `python -m stndt.cli`, one module per pipeline stage (data, training, evaluation,
paper). Each module registers its commands with `command`; stndt.cli builds the parser from COMMANDS.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str):
    """Register a subcommand: the decorated function takes parsed args; `add_args` declares them."""

    def wrap(add_args):
        def register(run):
            COMMANDS[name] = (run, add_args, help)
            return run

        return register

    return wrap


def keyed(rows: list[list[str]] | None, what: str) -> dict:
    """Repeated `--opt KEY [KEY ...] PATH` values as a nested dict {KEY: ... {KEY: Path}}, in the given
    order; a key path given twice is an error (two files for one slot). Used by the commands whose
    every input file is an argument (baselines, neuron-dropping, figure)."""
    out: dict = {}
    for *keys, path in rows or []:
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if keys[-1] in node:
            raise ValueError(f"{what}: {' '.join(keys)} given twice")
        node[keys[-1]] = Path(path)
    return out


def member_file_arg(p: argparse.ArgumentParser, help: str, with_set: bool = False) -> None:
    """`--member-file [SET] MEMBER NAME PATH`, repeated: every member file a command reads, handed over
    one by one by its rule (stndt.members.MemberFiles); read back with `keyed`."""
    metavar = ("SET", "MEMBER", "NAME", "PATH") if with_set else ("MEMBER", "NAME", "PATH")
    p.add_argument("--member-file", nargs=len(metavar), action="append", required=True, metavar=metavar, help=help)
