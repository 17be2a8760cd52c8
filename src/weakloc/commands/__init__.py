"""Sub-commands of ``weakloc``, one module per topic, each with ``register(subparsers)``.

Shared here: the two ways a command receives the study configuration.
"""

from __future__ import annotations

import argparse

from weakloc.config import load_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` (a user's YAML) and ``--config-json TEXT`` (what workflow rules pass)."""
    parser.add_argument("--config", metavar="FILE", help="study configuration YAML (default: built-in defaults)")
    parser.add_argument("--config-json", metavar="JSON", help="configuration sections as a JSON object (used by the workflow)")


def config_from_args(args: argparse.Namespace) -> dict:
    """The validated configuration, defaults filled, from ``--config`` and/or ``--config-json``."""
    return load_config(getattr(args, "config", None), getattr(args, "config_json", None))
