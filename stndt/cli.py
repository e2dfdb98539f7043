"""`stndt` command line: every Snakemake rule is one of these subcommands, so the whole pipeline can
also be run by hand or from another workflow engine. The commands live in stndt.commands, by stage.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stndt.commands import COMMANDS, data, evaluation, paper, training  # noqa: F401 (registers their commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stndt", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (run, add_args, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as e:
        logging.getLogger("stndt").error("%s", e)
        print(f"stndt {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
