"""weakloc sub-commands: localization (METHOD.md steps 3, 4 and 6, and ``localize`` end to end).

- ``weakloc cams --manifest M --split test --checkpoint CKPT --out DIR``: ``DIR/block{b}/{id}.png``
  for b = 1..B and ``DIR/blocks.csv`` (``id,label,score,w1..wB``) (:func:`weakloc.cams.write_block_maps`).
- ``weakloc fuse --cams DIR --method NAME --out DIR2``: ``DIR2/{id}.png`` (:func:`weakloc.fusion.fuse_folder`).
- ``weakloc refine --fused DIR --segments DIR [DIR ...] --cams DIR --out DIR3``: ``DIR3/{id}.png``
  (:func:`weakloc.refinement.refine_folder`).
- ``weakloc localize INPUT... --out DIR [--checkpoint CKPT] [--segmenter NAME ...] [--fusion NAME] [--force]``:
  per image ``<id>_prob.png``, ``_mask.png``, ``_overlay.jpg``, ``_photo.jpg``; ``scores.csv``, ``run.json`` and
  the gallery ``index.html`` (:mod:`weakloc.localize`, :mod:`weakloc.gallery`); without ``--checkpoint`` the
  released model (:mod:`weakloc.release`); a rerun resumes (skips the images already done).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from weakloc.commands import (
    add_command,
    add_config_options,
    add_input,
    add_manifest_options,
    add_out,
    add_shard_option,
    config_from_args,
)
from weakloc.config import schema_choices
from weakloc.errors import WeaklocError
from weakloc.shards import parse_shard


def run_cams(args: argparse.Namespace) -> int:
    """Per-block maps of a split, resumable: a killed run keeps the images it had finished."""
    from weakloc.cams import write_block_maps

    write_block_maps(args.manifest, args.split, args.checkpoint, args.out, config_from_args(args),
                     shard=parse_shard(args.shard))  # --shard I/N: this job's images only
    return 0


def run_fuse(args: argparse.Namespace) -> int:
    from weakloc.fusion import fuse_folder

    fuse_folder(args.cams, args.method, args.out, config_from_args(args), shard=parse_shard(args.shard))
    return 0


def run_refine(args: argparse.Namespace) -> int:
    from weakloc.refinement import refine_folder

    refine_folder(args.fused, args.segments, args.cams, args.out, config_from_args(args),
                  shard=parse_shard(args.shard))
    return 0


def run_localize(args: argparse.Namespace) -> int:
    from weakloc.localize import localize_images
    from weakloc.segmenters import DOWNSCALED_SEGMENTERS

    # no --config: the settings the checkpoint's study stored at training time (weakloc.pipeline.resolve_settings)
    config = config_from_args(args) if args.config or args.config_json else None
    overrides = {}
    if args.segment_max_side is not None:  # checked against the schema with the rest of the settings
        overrides.update({f"segmenters.{name}.max_side": args.segment_max_side for name in DOWNSCALED_SEGMENTERS})
    if args.regions is not None:
        overrides["localize.regions"] = args.regions
    if args.decision is not None:
        overrides["refine.decision.rule"] = args.decision
    if args.threads is not None and args.threads < 1:
        raise WeaklocError(f"--threads must be at least 1, got {args.threads}")
    segmenters = [] if args.no_refine else (args.segmenter or None)
    result = localize_images(args.inputs, args.checkpoint, args.out, config, segmenters=segmenters,
                             fusion=args.fusion, threads=args.threads, overrides=overrides, force=args.force)
    n_ok, n_bad = len(result.rows), len(result.failures)
    resumed = f" ({result.resumed} from an earlier run)" if result.resumed else ""
    print(f"weakloc localize: {n_ok} image(s) written to {args.out}{resumed}"
          + (f", {n_bad} failed" if n_bad else "") + f"; gallery: {Path(args.out) / 'index.html'}", file=sys.stderr)
    return 1 if n_bad else 0


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = add_command(subparsers, "cams", run_cams, "per-block activation maps of a manifest split (step 3)")
    add_manifest_options(p, "run")
    add_input(p, "--checkpoint", "WCBnet checkpoint", metavar="CKPT")
    add_out(p, "DIR", "output folder: block{b}/{id}.png and blocks.csv")
    add_shard_option(p)
    add_config_options(p, sections=('cams',))

    p = add_command(subparsers, "fuse", run_fuse, "fuse the per-block maps into coarse maps (step 4)")
    add_input(p, "--cams", "output folder of `weakloc cams`")
    p.add_argument("--method", required=True, metavar="NAME", help="attention, mean, max or wavelet")
    add_out(p, "DIR", "output folder: {id}.png")
    add_shard_option(p)
    add_config_options(p, sections=('fusion',))

    p = add_command(subparsers, "refine", run_refine,
                    "Bayesian refinement of fused maps with segment regions (step 6)")
    add_input(p, "--fused", "output folder of `weakloc fuse`")
    add_input(p, "--segments", "one or more `weakloc segment` folders ({id}.npz); several combine "
              "as independent evidence", nargs="+")
    add_input(p, "--cams", "output folder of `weakloc cams` (image ids, image probabilities, block maps)")
    add_out(p, "DIR", "output folder: {id}.png")
    add_shard_option(p)
    add_config_options(p, sections=('refine',))

    p = add_command(subparsers, "localize", run_localize,
                    "localize manipulated regions in image files or folders, end to end "
                    "(maps, masks, scores.csv with verdicts, a gallery index.html)",
                    description="Without --config the pipeline is the one of the study that trained the "
                    "checkpoint, stored in it at training time (for the default checkpoint: SAM regions "
                    "with the calibrated per-image decision, chosen on the validation split); a checkpoint "
                    "that stores none gets the schema's defaults. run.json and the gallery say which. "
                    "--decision threshold gives the paper's decision (P > 0.5). Without --checkpoint: the "
                    "released model that ships with weakloc (docs/model-card.md). Rerunning the same command on "
                    "the same folder skips the images already done (same bytes, checkpoint and settings).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (not recursive)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="WCBnet checkpoint (default: the released model, docs/model-card.md)")
    add_out(p, "DIR", "output folder")
    p.add_argument("--segmenter", action="extend", nargs="+", metavar="NAME",
                   help="segmenter(s) for the refinement, e.g. --segmenter slic sam "
                   "(default: the config's segmenters.use)")
    p.add_argument("--no-refine", action="store_true", help="write the fused map without refinement")
    p.add_argument("--fusion", metavar="NAME", help="fusion method (default: the first of fusion.methods)")
    p.add_argument("--segment-max-side", type=int, metavar="N",
                   help="the segmenters (but sam_prompt) work at most at N pixels on the longer side and map the "
                        "regions back (faster, coarser region edges; default: segmenters.<name>.max_side, 2048)")
    p.add_argument("--regions", choices=schema_choices("localize.regions"),
                   help="masked: run the segmenters only on images that can get a mask (their score reaches "
                        "refine.decision.mask_min_score); all: on every image (same masks and scores, slower); "
                        "default: localize.regions")
    p.add_argument("--decision", choices=schema_choices("refine.decision.rule"),
                   help="per-image decision: calibrated [ours] or threshold (the paper's P > 0.5); "
                        "default: the study's refine.decision.rule")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: OMP_NUM_THREADS, else the cores less one, which the "
                        "segmenter thread uses)")
    p.add_argument("--force", action="store_true",
                   help="recompute every image, even those an earlier run of the same command finished")
    add_config_options(p, config_help="study configuration YAML (default: the settings stored in the checkpoint)")
