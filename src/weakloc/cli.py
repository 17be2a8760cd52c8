"""The ``weakloc`` command line: one sub-command per step of the method.

Each topic registers its sub-commands from ``weakloc.commands.<topic>``. A
:class:`~weakloc.errors.WeaklocError` ends the program with one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from weakloc import __version__
from weakloc.errors import WeaklocError

# Topic modules, in the order their commands appear in --help.
COMMAND_MODULES = ["data", "detector", "localization", "segmentation", "evaluation", "reporting"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weakloc",
        description="Weakly-supervised localization of manipulated image regions (WSWCBnet reconstruction).",
    )
    parser.add_argument("--version", action="version", version=f"weakloc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"weakloc.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except WeaklocError as exc:
        print(f"weakloc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weakloc {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
