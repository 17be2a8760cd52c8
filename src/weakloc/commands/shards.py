"""weakloc sub-commands: shards of the per-image steps (docs/cluster.md).

``weakloc shards merge SHARD_DIR... --out DIR``: the folders of shards 1/N..N/N of one step
(``segment``, ``cams``, ``baseline``, ``fuse`` or ``refine`` run with ``--shard I/N``) merged
into the folder the unsharded step writes, file for file.
"""

from __future__ import annotations

import argparse
import sys


def _merge(args: argparse.Namespace) -> int:
    from weakloc.shards import merge_shards

    n = merge_shards(args.shards, args.out)
    print(f"weakloc shards merge: {len(args.shards)} shard(s), {n} file(s) in {args.out}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``shards`` to ``subparsers``."""
    p = subparsers.add_parser("shards", help="merge the shards of a per-image step",
                              description="Shards split a per-image step into jobs (config key shards.count).")
    sub = p.add_subparsers(dest="shards_command", metavar="WHAT", required=True)
    m = sub.add_parser(
        "merge", help="merge shard folders 1/N..N/N into one step folder",
        description="Every file of every shard goes to OUT; a file in several shards must be identical in all; "
                    "blocks.csv is re-interleaved in shard order, which restores the unsharded row order. "
                    "OUT appears complete or not at all.")
    m.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="shard folders, in shard order 1..N")
    m.add_argument("--out", required=True, metavar="DIR", help="the merged folder")
    m.set_defaults(func=_merge)


def add_shard_option(parser: argparse.ArgumentParser) -> None:
    """``--shard I/N``: process only shard I of N of the step's images (weakloc.shards)."""
    parser.add_argument("--shard", metavar="I/N", default=None,
                        help="only the images at positions I-1, I-1+N, ... of the list (1 <= I <= N); "
                             "merge the N folders with `weakloc shards merge`")
