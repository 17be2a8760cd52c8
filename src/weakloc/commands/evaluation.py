"""weakloc sub-commands: evaluation.

- ``weakloc baseline NAME --manifest M --split test --out DIR``: classic detector maps
  (:func:`weakloc.baselines.write_baseline_maps`).
- ``weakloc score PRED_DIR [GT_DIR | --manifest M --split S]``: pixel metrics of a map folder
  (:func:`weakloc.scoring.score_maps`).
- ``weakloc tables FILE... --out results/{d}/tables``: the study's tables from exactly these files
  (:func:`weakloc.tables.build_tables`).
"""

from __future__ import annotations

import argparse
import sys

from weakloc.baselines import BASELINES
from weakloc.commands import (
    add_command,
    add_config_options,
    add_manifest_options,
    add_out,
    add_shard_option,
    config_from_args,
)
from weakloc.errors import WeaklocError
from weakloc.manifest import SPLITS


def _run_baseline(args: argparse.Namespace) -> int:
    from weakloc.baselines import write_baseline_maps
    from weakloc.shards import parse_shard

    config = config_from_args(args)
    lo, hi = config["evaluate"]["baseline_percentiles"]
    stats = write_baseline_maps(args.name, args.manifest, args.split, args.out, (lo, hi),
                                shard=parse_shard(args.shard))
    per = stats["seconds_per_image"]
    print(f"baseline {stats['baseline']}: {stats['written']} maps written, {stats['skipped']} kept, "
          f"{stats['seconds']:.1f} s" + (f" ({per:.3f} s/image)" if per is not None else ""), file=sys.stderr)
    return 0


def _run_score(args: argparse.Namespace) -> int:
    from weakloc.scoring import format_summary, score_maps, write_scores

    if (args.gt_dir is None) == (args.manifest is None):
        raise WeaklocError("give the ground truth as GT_DIR or as --manifest (exactly one)")
    from weakloc.intervals import BootstrapSettings

    config = config_from_args(args)
    threshold = args.threshold
    if threshold is None:
        threshold = config["evaluate"]["threshold"]
    if not 0.0 <= threshold <= 1.0:
        raise WeaklocError(f"--threshold must be in [0, 1], got {threshold}")
    per_image, summary = score_maps(args.pred_dir, args.gt_dir, manifest=args.manifest, split=args.split,
                                    suffix=args.suffix, threshold=threshold,
                                    bootstrap=BootstrapSettings.from_config(config), progress=not args.quiet)
    write_scores(per_image, summary, args.json, args.csv)
    print(format_summary(summary))
    return 0


def _run_tables(args: argparse.Namespace) -> int:
    from weakloc.tables import build_tables

    written = build_tables(args.files, args.out, config=config_from_args(args), literature=args.literature,
                           name=args.name)
    print(f"tables: {len(written)} tables written to {args.out} ({', '.join(written)})", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = add_command(subparsers, "baseline", _run_baseline,
                    "write a classic detector's maps (ela, noi1, blk, dct) for a split",
                    "Write DIR/{id}.png for every image of the split with a classic forensic detector "
                    "(pyIFD), upsampled to the image size and normalised per image (docs/baselines.md). "
                    "Existing maps are kept, so an interrupted run resumes.")
    p.add_argument("name", choices=list(BASELINES), help="which baseline")
    add_manifest_options(p, "run on")
    add_out(p, "DIR", "folder for the {id}.png maps")
    add_shard_option(p)
    add_config_options(p, sections=('evaluate',))

    p = add_command(subparsers, "score", _run_score, "score a folder of localization maps against ground-truth masks",
                    "Pixel F1, IoU, MCC (at prob > threshold), AUC and the oracle best-threshold F1 of "
                    "PRED_DIR/<id><suffix>, per manipulated image then averaged, and dataset-level "
                    "(docs/evaluation.md). A missing map counts as all zero; a map whose size differs "
                    "from its mask is an error.")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="folder of 8-bit probability maps <id><suffix>")
    p.add_argument("gt_dir", metavar="GT_DIR", nargs="?", help="folder of binary masks <id>.png (or use --manifest)")
    p.add_argument("--manifest", metavar="CSV", help="take masks from this manifest instead of GT_DIR")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="manifest split to score (default: test)")
    p.add_argument("--suffix", default=None, help="map file name after the id (default: _prob.png in a `weakloc "
                   "localize` output folder, else .png)")
    p.add_argument("--threshold", type=float, default=None,
                   help="binarisation threshold, prob > T (default: evaluate.threshold, 0.5)")
    p.add_argument("--json", metavar="FILE", help="write the summary (means, dataset level, curve) here")
    p.add_argument("--csv", metavar="FILE", help="write per-image rows (id,f1,iou,mcc,auc,best_f1,...) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(p, sections=('evaluate',))

    p = add_command(subparsers, "tables", _run_tables,
                    "build the localization, detection, ablation and baseline tables",
                    "Read exactly the score files given (seed<s>/scores/<variant>.json, "
                    "seed<s>/detect/metrics.json, baselines/scores/baseline-<name>.json; nothing else on "
                    "disk) and write each table as CSV, Markdown and LaTeX (mean ± std over the seeds "
                    "they name), README.md with all of them, and summary.json.")
    p.add_argument("files", nargs="+", metavar="FILE", help="score files, e.g. results/{d}/seed*/scores/*.json")
    add_out(p, "DIR", "output folder, e.g. results/{d}/tables")
    p.add_argument("--name", help="title of the tables (default: the dataset folder above seed<s>)")
    p.add_argument("--literature", metavar="CSV", help="optional quoted numbers: columns method,dataset,metric,"
                   "value,source (only numbers a paper states; see docs/evaluation.md)")
    add_config_options(p, sections=('evaluate', 'fusion', 'segmenters', 'sel', 'selftrain'))
