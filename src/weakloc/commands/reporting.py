"""weakloc sub-commands: reporting (``weakloc figures ...``).

One sub-command per figure; the workflow passes every input path explicitly::

    weakloc figures examples   --manifest M --cams DIR [--fused DIR ...] [--segments DIR ...] [--refined DIR ...] --out PNG
    weakloc figures segmenters --scores JSON [JSON ...] [--metric f1] --out PNG
    weakloc figures thresholds --scores JSON [JSON ...] --out PNG
    weakloc figures training   --logs CSV [CSV ...] --out PNG
"""

from __future__ import annotations

import argparse
import sys

from weakloc.commands import add_config_options, add_manifest_options, config_from_args


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = subparsers.add_parser("figures", help="draw the study's figures (PNG)",
                              description="Draw one of the study's figures as a PNG from explicit input files.")
    figs = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    ex = figs.add_parser("examples", help="qualitative panels: image, ground truth, block maps, fused, segments, refined",
                         description="One row per test image chosen with a seeded RNG among manipulated images "
                                     "with a mask (evaluate.n_examples, evaluate.examples_seed).")
    add_manifest_options(ex, "choose from")
    ex.add_argument("--cams", required=True, metavar="DIR", help="results/{d}/seed{s}/cams (with block{b}/ folders)")
    ex.add_argument("--fused", nargs="*", default=[], metavar="DIR", help="fused/{fusion} folders, one column each")
    ex.add_argument("--segments", nargs="*", default=[], metavar="DIR", help="segments/{segmenter}/{key} folders")
    ex.add_argument("--refined", nargs="*", default=[], metavar="DIR", help="refined/{fusion}/{segset} folders")
    ex.add_argument("--n", type=int, default=None, help="images to show (default: evaluate.n_examples)")
    ex.add_argument("--out", required=True, metavar="PNG", help="figure file")
    add_config_options(ex, sections=('evaluate',))
    ex.set_defaults(func=_examples)

    seg = figs.add_parser("segmenters", help="F1 of the fused map and of each refinement, one point per seed",
                          description="Points per seed and the mean over seeds of each fused-*/refined-* score file.")
    seg.add_argument("--scores", nargs="+", required=True, metavar="JSON", help="fused-*.json and refined-*.json score files")
    seg.add_argument("--metric", default="f1", help="top-level key of the score files to plot (default: f1)")
    seg.add_argument("--out", required=True, metavar="PNG", help="figure file")
    add_config_options(seg, sections=('evaluate',))
    seg.set_defaults(func=_segmenters)

    thr = figs.add_parser("thresholds", help="pixel F1 against the threshold for each variant",
                          description="Draws each score file's threshold_curve (mean over seeds, band = std).")
    thr.add_argument("--scores", nargs="+", required=True, metavar="JSON", help="score files (fused, refined, baseline)")
    thr.add_argument("--out", required=True, metavar="PNG", help="figure file")
    add_config_options(thr, sections=('evaluate',))
    thr.set_defaults(func=_thresholds)

    rb = figs.add_parser("robustness", help="pixel F1 against the perturbation level (robustness protocol)")
    rb.add_argument("--levels", nargs="+", required=True, metavar="JSON", help="`weakloc robustness` outputs")
    rb.add_argument("--out", required=True, metavar="PNG", help="figure file")
    add_config_options(rb, sections=("evaluate",))
    rb.set_defaults(func=_robustness)

    tr = figs.add_parser("training", help="training/validation loss and validation AUC against the epoch")
    tr.add_argument("--logs", nargs="+", required=True, metavar="CSV", help="train_log.csv files, one per run")
    tr.add_argument("--out", required=True, metavar="PNG", help="figure file")
    add_config_options(tr, sections=('evaluate',))
    tr.set_defaults(func=_training)


def _done(args: argparse.Namespace, detail: str = "") -> int:
    print(f"figures {args.figure}: wrote {args.out}{detail}", file=sys.stderr)
    return 0


def _examples(args: argparse.Namespace) -> int:
    from weakloc.figures import qualitative_panels

    ev = config_from_args(args)["evaluate"]
    n = ev["n_examples"] if args.n is None else args.n
    ids = qualitative_panels(args.manifest, args.cams, args.fused, args.segments, args.refined, args.out,
                             n=n, seed=ev["examples_seed"], split=args.split)
    return _done(args, f" ({len(ids)} images: {', '.join(ids)})")


def _segmenters(args: argparse.Namespace) -> int:
    from weakloc.figures import f1_by_segmenter

    config_from_args(args)
    f1_by_segmenter(args.scores, args.out, metric=args.metric)
    return _done(args)


def _thresholds(args: argparse.Namespace) -> int:
    from weakloc.figures import threshold_curves

    ev = config_from_args(args)["evaluate"]
    threshold_curves(args.scores, args.out, fixed=ev["threshold"])
    return _done(args)


def _robustness(args: argparse.Namespace) -> int:
    from weakloc.figures import robustness_curves

    config_from_args(args)
    robustness_curves(args.levels, args.out)
    return _done(args)


def _training(args: argparse.Namespace) -> int:
    from weakloc.figures import training_curves

    config_from_args(args)
    training_curves(args.logs, args.out)
    return _done(args)
