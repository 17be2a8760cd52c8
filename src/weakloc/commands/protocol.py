"""weakloc sub-commands: the comparison protocol (peer rules, perturbations, robustness, protocol tables).

- ``weakloc peer-refine RULE --fused DIR --segments DIR --cams DIR --out DIR``: ``DIR/{id}.png``.
- ``weakloc perturb LEVEL --manifest M --split test --out DIR``: a perturbed copy (manifest, images, masks).
- ``weakloc robustness LEVEL --manifest M --split test --checkpoint CKPT --out JSON``.
- ``weakloc robustness-baselines LEVEL --manifest M --split test --baselines NAME... --out JSON``.
- ``weakloc protocol-tables --dataset NAME FILE... [--dataset ...] [--robustness JSON ...] [--literature CSV] --out DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from weakloc.commands import add_config_options, add_manifest_options, config_from_args
from weakloc.errors import WeaklocError


def _run_peer(args: argparse.Namespace) -> int:
    from weakloc.commands.localization import _read_blocks_csv
    from weakloc.io import read_prob, write_prob
    from weakloc.peer_rules import apply_peer_rule
    from weakloc.segmenters import load_partition

    config = config_from_args(args)
    fused_dir, seg_dir, out = Path(args.fused), Path(args.segments), Path(args.out)
    df = _read_blocks_csv(Path(args.cams))
    out.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(df["id"], desc=f"peer {args.rule}", unit="img", file=sys.stderr):
        coarse = read_prob(fused_dir / f"{image_id}.png")
        part = load_partition(seg_dir / f"{image_id}.npz")
        if part.shape != coarse.shape:
            raise WeaklocError(f"{seg_dir / (image_id + '.npz')}: partition {part.shape} does not match "
                               f"the fused map {coarse.shape}")
        write_prob(apply_peer_rule(args.rule, coarse, part, config["peer_rules"][args.rule]), out / f"{image_id}.png")
    return 0


def _run_perturb(args: argparse.Namespace) -> int:
    from weakloc.perturb import perturb_dataset

    config = config_from_args(args)
    n = perturb_dataset(args.manifest, args.split, args.level, args.out, seed=config["robustness"]["seed"])
    print(f"perturb {args.level}: {n} images written to {args.out}", file=sys.stderr)
    return 0


def _run_robustness(args: argparse.Namespace) -> int:
    from weakloc.robustness import score_level, write_level

    config = config_from_args(args)
    result = score_level(args.manifest, args.level, config, checkpoint=args.checkpoint, baselines=args.baselines,
                         split=args.split)
    write_level(result, args.out)
    f1 = ", ".join(f"{m} {s['f1']:.3f}" for m, s in result["methods"].items() if s["f1"] is not None)
    print(f"robustness {args.level}: pixel F1 {f1}", file=sys.stderr)
    return 0


def _run_tables(args: argparse.Namespace) -> int:
    from weakloc.protocol import build_protocol_tables

    config = config_from_args(args)
    columns = []
    for item in args.dataset:
        if len(item) < 2:
            raise WeaklocError(f"--dataset {' '.join(item)}: give a name and its score files")
        columns.append((item[0], item[1:]))
    written = build_protocol_tables(columns, args.out, config, robustness=args.robustness, literature=args.literature)
    print(f"protocol-tables: {', '.join(written)} written to {args.out}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = subparsers.add_parser("peer-refine", help="a peer's region-selection rule on fused maps (EdgeCAM-/SEPL-style)",
                              description="Apply the EdgeCAM-style vote or the SEPL-style selection (peer_rules, "
                                          "docs/evaluation.md) to every fused map with one cached partition.")
    p.add_argument("rule", choices=["edgecam", "sepl"], help="which peer rule")
    p.add_argument("--fused", required=True, metavar="DIR", help="output folder of `weakloc fuse`")
    p.add_argument("--segments", required=True, metavar="DIR", help="one `weakloc segment` folder ({id}.npz)")
    p.add_argument("--cams", required=True, metavar="DIR", help="output folder of `weakloc cams` (the image ids)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: {id}.png")
    add_config_options(p, sections=("peer_rules",))
    p.set_defaults(func=_run_peer)

    p = subparsers.add_parser("perturb", help="a perturbed copy of a split's masked manipulated images (robustness)",
                              description="Write manifest.csv, images/ and masks/ of the split's manipulated images "
                                          "with a mask, perturbed: jpeg-Q, blur-K, noise-VAR or resize-F.")
    p.add_argument("level", metavar="LEVEL", help="e.g. jpeg-70, blur-7, noise-3, resize-0.5")
    add_manifest_options(p, "perturb")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_config_options(p, sections=("robustness",))
    p.set_defaults(func=_run_perturb)

    p = subparsers.add_parser("robustness", help="pixel F1 of the default pipeline on one perturbation level",
                              description="Score the masked manipulated images of a (perturbed) manifest with the "
                                          "default pipeline of `weakloc localize` (robustness.segmenters).")
    p.add_argument("level", metavar="LEVEL", help="the level's name (none for the unperturbed images)")
    add_manifest_options(p, "score")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="WCBnet checkpoint")
    p.add_argument("--out", required=True, metavar="JSON", help="output file")
    add_config_options(p, sections=("cams", "fusion", "segmenters", "refine", "localize", "evaluate", "robustness"))
    p.set_defaults(func=_run_robustness, baselines=[])

    p = subparsers.add_parser("robustness-baselines", help="pixel F1 of classic baselines on one perturbation level",
                              description="Score the masked manipulated images of a (perturbed) manifest with "
                                          "classic baselines (evaluate.baseline_percentiles).")
    p.add_argument("level", metavar="LEVEL", help="the level's name (none for the unperturbed images)")
    add_manifest_options(p, "score")
    p.add_argument("--baselines", nargs="+", required=True, metavar="NAME", choices=["ela", "noi1", "blk", "dct"],
                   help="classic baselines to score")
    p.add_argument("--out", required=True, metavar="JSON", help="output file")
    add_config_options(p, sections=("evaluate",))
    p.set_defaults(func=_run_robustness, checkpoint=None)

    p = subparsers.add_parser("protocol-tables", help="cross-dataset, robustness and quoted-literature tables",
                              description="Write cross_dataset (and robustness, literature) tables from exactly "
                                          "the files given.")
    p.add_argument("--dataset", action="append", nargs="+", required=True, metavar="NAME_THEN_FILES",
                   help="a dataset's name, then its score files (as `weakloc tables` takes them); the first is "
                        "the training set")
    p.add_argument("--robustness", nargs="*", default=[], metavar="JSON", help="`weakloc robustness` outputs")
    p.add_argument("--literature", metavar="CSV", help="quoted numbers (docs/literature/quoted.csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_config_options(p, sections=("evaluate", "fusion", "segmenters", "robustness"))
    p.set_defaults(func=_run_tables)
