"""Sub-commands of ``weakloc``, one module per topic, each with ``register(subparsers)``.

Shared here: the two ways a command receives the study configuration.
"""

from __future__ import annotations

import argparse

from weakloc.config import load_config
from weakloc.manifest import SPLITS


def add_config_options(parser: argparse.ArgumentParser, sections: tuple[str, ...] | None = None) -> None:
    """``--config FILE`` (a user's YAML) and ``--config-json TEXT`` (what workflow rules pass).

    ``sections`` are the config sections the command reads, and the only ones
    :func:`config_from_args` hands it; the workflow's rules must pass exactly these (a test
    walks every rule's command against them), so no section silently falls back to its
    defaults. None: the whole configuration (``weakloc localize``).
    """
    parser.add_argument("--config", metavar="FILE", help="study configuration YAML (default: built-in defaults)")
    parser.add_argument("--config-json", metavar="JSON", help="configuration sections as a JSON object (used by the workflow)"
                        + (f"; reads {', '.join(sections)}" if sections else ""))
    parser.set_defaults(config_sections=sections)


def add_manifest_options(parser: argparse.ArgumentParser, action: str) -> None:
    """``--manifest CSV`` (required) and ``--split`` (default test): the images a step runs on."""
    parser.add_argument("--manifest", required=True, metavar="CSV", help="manifest.csv of a prepared dataset")
    parser.add_argument("--split", default="test", choices=SPLITS, help=f"split to {action} (default: test)")


def config_from_args(args: argparse.Namespace) -> dict:
    """The validated configuration from ``--config`` and/or ``--config-json``, defaults filled,
    restricted to the command's declared ``config_sections`` (all of it when none are declared)."""
    config = load_config(getattr(args, "config", None), getattr(args, "config_json", None))
    sections = getattr(args, "config_sections", None)
    return config if sections is None else {k: config[k] for k in sections}
