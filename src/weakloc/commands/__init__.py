"""Sub-commands of ``weakloc``, one module per topic, each with ``register(subparsers)``.

A command is argparse plus one library call. Shared here: how a command or a group of
commands is declared (:func:`add_command`, :func:`add_group`), the options several commands
take (``--out``, ``--manifest``/``--split``, ``--shard``, ``--checkpoint``, input folders) and
the two ways a command receives the study configuration.
"""

from __future__ import annotations

import argparse

from weakloc.config import load_config
from weakloc.manifest import SPLITS


def add_command(subparsers, name: str, func, help: str, description: str | None = None,
                **defaults) -> argparse.ArgumentParser:
    """The parser of sub-command ``name``, which runs ``func(args)``; ``defaults`` are further
    attributes every parse sets (e.g. ``checkpoint=None`` for a command without that option)."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func, **defaults)
    return parser


def add_group(subparsers, name: str, help: str, description: str, dest: str, metavar: str):
    """A command ``name`` made of sub-commands (``weakloc NAME METAVAR``), one of which must be
    given; its name goes to ``args.<dest>``. Returns the subparsers to add them to."""
    parser = subparsers.add_parser(name, help=help, description=description)
    return parser.add_subparsers(dest=dest, metavar=metavar, required=True)


def add_out(parser: argparse.ArgumentParser, metavar: str, help: str) -> None:
    """``--out PATH`` (required): where the command writes."""
    parser.add_argument("--out", required=True, metavar=metavar, help=help)


def add_input(parser: argparse.ArgumentParser, flag: str, help: str, metavar: str = "DIR",
              nargs: str | None = None) -> None:
    """A required input ``flag`` (a step's output folder by default; ``nargs="+"`` for several)."""
    parser.add_argument(flag, required=True, metavar=metavar, nargs=nargs, help=help)


def add_shard_option(parser: argparse.ArgumentParser) -> None:
    """``--shard I/N``: process only shard I of N of the step's images (weakloc.shards)."""
    parser.add_argument("--shard", metavar="I/N", default=None,
                        help="only the images at positions I-1, I-1+N, ... of the list (1 <= I <= N); "
                             "merge the N folders with `weakloc shards merge`")


def add_config_options(parser: argparse.ArgumentParser, sections: tuple[str, ...] | None = None,
                       config_help: str = "study configuration YAML (default: built-in defaults)") -> None:
    """``--config FILE`` (a user's YAML; repeatable) and ``--config-json TEXT`` (what workflow rules pass).

    ``sections`` are the config sections the command reads, and the only ones
    :func:`config_from_args` hands it; the workflow's rules must pass exactly these (a test
    walks every rule's command against them), so no section silently falls back to its
    defaults. None: the whole configuration (``weakloc localize``).
    """
    parser.add_argument("--config", metavar="FILE", action="append",
                        help=config_help + "; repeat it to merge several, later files winning "
                        "(as snakemake --configfile a.yaml b.yaml)")
    parser.add_argument("--config-json", metavar="JSON",
                        help="configuration sections as a JSON object (used by the workflow)"
                        + (f"; reads {', '.join(sections)}" if sections else ""))
    parser.set_defaults(config_sections=sections)


def add_manifest_options(parser: argparse.ArgumentParser, action: str, several: tuple[str, ...] = ()) -> None:
    """``--manifest CSV`` (required) and ``--split`` (default test): the images a step runs on.

    ``several``: the step takes one split or more (``--split test holdout``), these by default.
    """
    parser.add_argument("--manifest", required=True, metavar="CSV", help="manifest.csv of a prepared dataset")
    if several:
        parser.add_argument("--split", nargs="+", default=list(several), choices=SPLITS, metavar="SPLIT",
                            help=f"split(s) to {action} (default: {' '.join(several)})")
    else:
        parser.add_argument("--split", default="test", choices=SPLITS, help=f"split to {action} (default: test)")


def config_from_args(args: argparse.Namespace) -> dict:
    """The validated configuration from ``--config`` and/or ``--config-json``, defaults filled,
    restricted to the command's declared ``config_sections`` (all of it when none are declared)."""
    config = load_config(getattr(args, "config", None), getattr(args, "config_json", None))
    sections = getattr(args, "config_sections", None)
    return config if sections is None else {k: config[k] for k in sections}
