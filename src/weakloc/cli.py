"""The ``weakloc`` command line: one sub-command per step of the method.

Each topic registers its sub-commands from ``weakloc.commands.<topic>``. A
:class:`~weakloc.errors.WeaklocError` ends the program with one line on stderr and exit 2;
so does any ``OSError`` (a parent that is a file, no permission, a full disk): one line,
``path: reason``, never a traceback. Work already written stays (every write is atomic).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from weakloc.errors import WeaklocError
from weakloc.version import __version__

# Topic modules, in the order their commands appear in --help.
COMMAND_MODULES = ["data", "detector", "localization", "segmentation", "evaluation", "reporting", "shards", "protocol"]


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


def os_error_line(exc: OSError) -> str:
    """``path: reason`` for an ``OSError`` (``reason`` alone when it names no file)."""
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(map(str, names))}: {reason}" if names else reason


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except WeaklocError as exc:
        print(f"weakloc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"weakloc {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weakloc {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
