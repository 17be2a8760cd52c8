"""weakloc sub-commands: the comparison protocol (peer rules, perturbations, robustness, protocol tables).

- ``weakloc peer-refine RULE --fused DIR --segments DIR --cams DIR --out DIR``: ``DIR/{id}.png``.
- ``weakloc perturb LEVEL --manifest M --split test --out DIR``: a perturbed copy (manifest, images, masks).
- ``weakloc robustness LEVEL --manifest M --split test --checkpoint CKPT --out JSON``.
- ``weakloc robustness-baselines LEVEL --manifest M --split test --baselines NAME... --out JSON``.
- ``weakloc protocol-tables --dataset NAME FILE... [--dataset ...] [--robustness JSON ...] [--literature CSV]
  --out DIR``.
"""

from __future__ import annotations

import argparse
import sys

from weakloc.baselines import BASELINES
from weakloc.commands import add_command, add_config_options, add_input, add_manifest_options, add_out, config_from_args
from weakloc.errors import WeaklocError
from weakloc.peer_rules import PEER_RULES


def _run_peer(args: argparse.Namespace) -> int:
    from weakloc.peer_rules import peer_refine_folder

    peer_refine_folder(args.rule, args.fused, args.segments, args.cams, args.out, config_from_args(args))
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


def _add_level_command(subparsers, name: str, help: str, description: str, **defaults):
    """``weakloc NAME LEVEL --manifest M [--split S]``: a robustness score of one perturbation level."""
    p = add_command(subparsers, name, _run_robustness, help, description, **defaults)
    p.add_argument("level", metavar="LEVEL", help="the level's name (none for the unperturbed images)")
    add_manifest_options(p, "score")
    return p


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = add_command(subparsers, "peer-refine", _run_peer,
                    "a peer's region-selection rule on fused maps (EdgeCAM-/SEPL-style)",
                    "Apply the EdgeCAM-style vote or the SEPL-style selection (peer_rules, "
                    "docs/evaluation.md) to every fused map with one cached partition.")
    p.add_argument("rule", choices=PEER_RULES, help="which peer rule")
    add_input(p, "--fused", "output folder of `weakloc fuse`")
    add_input(p, "--segments", "one `weakloc segment` folder ({id}.npz)")
    add_input(p, "--cams", "output folder of `weakloc cams` (the image ids)")
    add_out(p, "DIR", "output folder: {id}.png")
    add_config_options(p, sections=("peer_rules",))

    p = add_command(subparsers, "perturb", _run_perturb,
                    "a perturbed copy of a split's masked manipulated images (robustness)",
                    "Write manifest.csv, images/ and masks/ of the split's manipulated images "
                    "with a mask, perturbed: jpeg-Q, blur-K, noise-VAR or resize-F.")
    p.add_argument("level", metavar="LEVEL", help="e.g. jpeg-70, blur-7, noise-3, resize-0.5")
    add_manifest_options(p, "perturb")
    add_out(p, "DIR", "output folder")
    add_config_options(p, sections=("robustness",))

    p = _add_level_command(subparsers, "robustness", "pixel F1 of the default pipeline on one perturbation level",
                           "Score the masked manipulated images of a (perturbed) manifest with the "
                           "default pipeline of `weakloc localize` (robustness.segmenters).", baselines=[])
    add_input(p, "--checkpoint", "WCBnet checkpoint", metavar="CKPT")
    add_out(p, "JSON", "output file")
    add_config_options(p, sections=("cams", "fusion", "segmenters", "refine", "localize", "evaluate", "robustness"))

    p = _add_level_command(subparsers, "robustness-baselines",
                           "pixel F1 of classic baselines on one perturbation level",
                           "Score the masked manipulated images of a (perturbed) manifest with "
                           "classic baselines (evaluate.baseline_percentiles).", checkpoint=None)
    p.add_argument("--baselines", nargs="+", required=True, metavar="NAME", choices=list(BASELINES),
                   help="classic baselines to score")
    add_out(p, "JSON", "output file")
    add_config_options(p, sections=("evaluate",))

    p = add_command(subparsers, "protocol-tables", _run_tables,
                    "cross-dataset, robustness and quoted-literature tables",
                    "Write cross_dataset (and robustness, literature) tables from exactly the files given.")
    p.add_argument("--dataset", action="append", nargs="+", required=True, metavar="NAME_THEN_FILES",
                   help="a dataset's name, then its score files (as `weakloc tables` takes them); the first is "
                        "the training set")
    p.add_argument("--robustness", nargs="*", default=[], metavar="JSON", help="`weakloc robustness` outputs")
    p.add_argument("--literature", metavar="CSV", help="quoted numbers (docs/literature/quoted.csv)")
    add_out(p, "DIR", "output folder")
    add_config_options(p, sections=("evaluate", "fusion", "refine", "segmenters", "robustness"))
