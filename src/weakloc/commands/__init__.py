"""Sub-commands of ``weakloc``, one module per topic, each with ``register(subparsers)``.

Shared here: the two ways a command receives the study configuration.
"""

from __future__ import annotations

import argparse

from weakloc.config import load_config
from weakloc.manifest import SPLITS


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` (a user's YAML) and ``--config-json TEXT`` (what workflow rules pass)."""
    parser.add_argument("--config", metavar="FILE", help="study configuration YAML (default: built-in defaults)")
    parser.add_argument("--config-json", metavar="JSON", help="configuration sections as a JSON object (used by the workflow)")


def add_manifest_options(parser: argparse.ArgumentParser, action: str) -> None:
    """``--manifest CSV`` (required) and ``--split`` (default test): the images a step runs on."""
    parser.add_argument("--manifest", required=True, metavar="CSV", help="manifest.csv of a prepared dataset")
    parser.add_argument("--split", default="test", choices=SPLITS, help=f"split to {action} (default: test)")


def config_from_args(args: argparse.Namespace) -> dict:
    """The validated configuration, defaults filled, from ``--config`` and/or ``--config-json``."""
    return load_config(getattr(args, "config", None), getattr(args, "config_json", None))
