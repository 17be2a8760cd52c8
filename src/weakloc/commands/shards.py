"""weakloc sub-commands: shards of the per-image steps (docs/cluster.md).

``weakloc shards merge SHARD_DIR... --out DIR``: the folders of shards 1/N..N/N of one step
(``segment``, ``cams``, ``baseline``, ``fuse`` or ``refine`` run with ``--shard I/N``) merged
into the folder the unsharded step writes, file for file.
"""

from __future__ import annotations

import argparse
import sys

from weakloc.commands import add_command, add_group, add_out


def register(subparsers) -> None:
    """Add ``shards`` to ``subparsers``."""
    sub = add_group(subparsers, "shards", "merge the shards of a per-image step",
                    "Shards split a per-image step into jobs (config key shards.count).",
                    dest="shards_command", metavar="WHAT")
    p = add_command(
        sub, "merge", _merge, "merge shard folders 1/N..N/N into one step folder",
        "Every file of every shard goes to OUT; a file in several shards must be identical in all; "
        "blocks.csv is re-interleaved in shard order, which restores the unsharded row order. "
        "OUT appears complete or not at all.")
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="shard folders, in shard order 1..N")
    add_out(p, "DIR", "the merged folder")


def _merge(args: argparse.Namespace) -> int:
    from weakloc.shards import merge_shards

    n = merge_shards(args.shards, args.out)
    print(f"weakloc shards merge: {len(args.shards)} shard(s), {n} file(s) in {args.out}", file=sys.stderr)
    return 0
