"""weakloc sub-commands: reporting (``weakloc figures ...``).

One sub-command per figure; the workflow passes every input path explicitly::

    weakloc figures examples   --manifest M --cams DIR [--fused DIR ...] [--segments DIR ...]
                               [--refined DIR ...] --out PNG
    weakloc figures segmenters --scores JSON [JSON ...] [--metric f1] --out PNG
    weakloc figures thresholds --scores JSON [JSON ...] --out PNG
    weakloc figures robustness --levels JSON [JSON ...] --out PNG
    weakloc figures training   --logs CSV [CSV ...] --out PNG
"""

from __future__ import annotations

import argparse
import sys

from weakloc.commands import (
    add_command,
    add_config_options,
    add_group,
    add_input,
    add_manifest_options,
    add_out,
    config_from_args,
)


def _finish_figure(p: argparse.ArgumentParser) -> None:
    """The options every figure ends with: ``--out PNG`` and the ``evaluate`` section."""
    add_out(p, "PNG", "figure file")
    add_config_options(p, sections=("evaluate",))


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    figs = add_group(subparsers, "figures", "draw the study's figures (PNG)",
                     "Draw one of the study's figures as a PNG from explicit input files.",
                     dest="figure", metavar="FIGURE")

    p = add_command(figs, "examples", _examples,
                    "qualitative panels: image, ground truth, block maps, fused, segments, refined",
                    "One row per test image chosen with a seeded RNG among manipulated images "
                    "with a mask (evaluate.n_examples, evaluate.examples_seed).")
    add_manifest_options(p, "choose from")
    add_input(p, "--cams", "results/{d}/seed{s}/cams (with block{b}/ folders)")
    for flag, text in (("--fused", "fused/{fusion} folders, one column each"),
                       ("--segments", "segments/{segmenter}/{key} folders"),
                       ("--refined", "refined/{fusion}/{segset} folders")):
        p.add_argument(flag, nargs="*", default=[], metavar="DIR", help=text)
    p.add_argument("--n", type=int, default=None, help="images to show (default: evaluate.n_examples)")
    _finish_figure(p)

    p = add_command(figs, "segmenters", _segmenters,
                    "F1 of the fused map and of each refinement, one point per seed",
                    "Points per seed and the mean over seeds of each fused-*/refined-* score file.")
    add_input(p, "--scores", "fused-*.json and refined-*.json score files", metavar="JSON", nargs="+")
    p.add_argument("--metric", default="f1", help="top-level key of the score files to plot (default: f1)")
    _finish_figure(p)

    p = add_command(figs, "thresholds", _thresholds, "pixel F1 against the threshold for each variant",
                    "Draws each score file's threshold_curve (mean over seeds, band = std).")
    add_input(p, "--scores", "score files (fused, refined, baseline)", metavar="JSON", nargs="+")
    _finish_figure(p)

    p = add_command(figs, "robustness", _robustness, "pixel F1 against the perturbation level (robustness protocol)")
    add_input(p, "--levels", "`weakloc robustness` outputs", metavar="JSON", nargs="+")
    _finish_figure(p)

    p = add_command(figs, "training", _training, "training/validation loss and validation AUC against the epoch")
    add_input(p, "--logs", "train_log.csv files, one per run", metavar="CSV", nargs="+")
    _finish_figure(p)


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
