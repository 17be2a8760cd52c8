"""weakloc sub-commands: detector (``train``, ``detect``, ``pseudo-masks``, ``self-train``).

- ``weakloc train --manifest M --seed S --out CKPT --log CSV`` (:func:`weakloc.training.train_wcbnet`).
- ``weakloc detect --manifest M [--split test holdout] --checkpoint CKPT --scores CSV --metrics JSON``
  (:func:`weakloc.detection.detect`).
- ``weakloc pseudo-masks --manifest M --checkpoint CKPT --seed S --out DIR``
  (:func:`weakloc.selftrain.write_pseudo_masks`).
- ``weakloc self-train --manifest M --teacher CKPT --pseudo DIR --seed S --out CKPT --log CSV``
  (:func:`weakloc.selftrain.self_train`).
"""

from __future__ import annotations

import argparse
import json
import sys

from weakloc.commands import add_command, add_config_options, add_input, add_manifest_options, add_out, config_from_args
from weakloc.config import PIPELINE_SECTIONS
from weakloc.manifest import DETECTION_SPLITS


def _report_training(summary: dict, args: argparse.Namespace) -> int:
    auc = summary["best_val_auc"]
    print(f"train: best epoch {summary['best_epoch']} (val AUC {auc:.4f}), {summary['epochs_run']} epochs, "
          f"stopped by {summary['stop_reason']}, {summary['seconds']:.0f} s; wrote {args.out}", file=sys.stderr)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from weakloc.training import train_wcbnet

    return _report_training(train_wcbnet(args.manifest, config_from_args(args), args.seed, args.out, args.log), args)


def _run_pseudo_masks(args: argparse.Namespace) -> int:
    from weakloc.selftrain import write_pseudo_masks

    n = write_pseudo_masks(args.manifest, args.checkpoint, args.out, config_from_args(args), args.seed)
    print(f"pseudo-masks: {n} training images; wrote {args.out}", file=sys.stderr)
    return 0


def _run_self_train(args: argparse.Namespace) -> int:
    from weakloc.selftrain import self_train

    summary = self_train(args.manifest, args.teacher, args.pseudo, config_from_args(args), args.seed, args.out,
                         args.log)
    return _report_training(summary, args)


def _run_detect(args: argparse.Namespace) -> int:
    from weakloc.detection import detect
    from weakloc.intervals import BootstrapSettings

    config = config_from_args(args)
    metrics = detect(args.manifest, args.checkpoint, args.split, args.scores, args.metrics,
                     threshold=float(config["evaluate"]["threshold"]), device=config["train"]["device"],
                     bootstrap=BootstrapSettings.from_config(config))
    print(json.dumps({k: metrics[k] for k in ("auc", "accuracy", "f1") if k in metrics}), file=sys.stderr)
    return 0


def _add_run_options(p: argparse.ArgumentParser, inputs: tuple[tuple[str, str, str], ...], seed_help: str,
                     out: tuple[str, str], log: bool = True) -> None:
    """``--manifest``, the other ``inputs`` (flag, help, metavar), ``--seed``, ``--out`` and (``log``) ``--log``."""
    add_input(p, "--manifest", "manifest of the prepared dataset", metavar="CSV")
    for flag, help_text, metavar in inputs:
        add_input(p, flag, help_text, metavar=metavar)
    p.add_argument("--seed", required=True, type=int, metavar="S", help=seed_help)
    add_out(p, *out)
    if log:
        p.add_argument("--log", required=True, metavar="CSV",
                       help="per-epoch log: epoch,train_loss,val_loss,val_auc,lr,seconds")


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = add_command(subparsers, "train", _run_train, "train WCBnet with image-level labels only",
                    "Train WCBnet on the manifest's train split (image labels only; masks are never read), "
                    "select the best epoch on validation AUC and write it to CKPT. The per-epoch log goes to "
                    "CSV. After every epoch a resume state is kept in CKPT's folder under resume/last.pt: "
                    "running the same command again continues from the last completed epoch "
                    "(docs/detector.md).")
    _add_run_options(p, (), "training seed", ("CKPT", "where the best checkpoint is written (.pt)"))
    add_config_options(p, sections=("sel", "model", "train", *PIPELINE_SECTIONS))

    p = add_command(subparsers, "pseudo-masks", _run_pseudo_masks, "pseudo-masks of the train split (self-training)",
                    "Run the checkpoint's own pipeline (block maps, the first fusion method, the regions of "
                    "selftrain.segmenter, the refine section) on the manifest's train images, as stored, and "
                    "write each one's pixel labels DIR/{id}.png (0 ignore, 1 background, 2 foreground; authentic "
                    "images all background) and DIR/pseudo.csv. Masks are never read. Resumable "
                    "(docs/selftrain.md).")
    _add_run_options(p, (("--checkpoint", "the teacher: a trained WCBnet checkpoint", "CKPT"),),
                     "seed of the subset (selftrain.max_images)", ("DIR", "folder of the pseudo-masks"), log=False)
    add_config_options(p, sections=("cams", "fusion", "segmenters", "refine", "localize", "selftrain"))

    p = add_command(subparsers, "self-train", _run_self_train, "fine-tune a teacher on its pseudo-masks",
                    "Fine-tune every parameter of the teacher on the pseudo-labelled train images with the "
                    "training loss plus selftrain.pixel_weight x the pixel loss, for selftrain.epochs epochs at "
                    "selftrain.lr_scale x train.lr; select the best epoch on validation AUC and write it to CKPT. "
                    "Resumable like train (docs/selftrain.md).")
    _add_run_options(p, (("--teacher", "the teacher's checkpoint", "CKPT"),
                         ("--pseudo", "its pseudo-masks (weakloc pseudo-masks)", "DIR")),
                     "training seed", ("CKPT", "where the student's best checkpoint is written (.pt)"))
    add_config_options(p, sections=("sel", "model", "train", "selftrain"))

    p = add_command(subparsers, "detect", _run_detect, "score images of a split with a trained WCBnet (image level)",
                    "Score every image of the split at full resolution; write id,label,score (probability) "
                    "to the scores CSV and image-level AUC, accuracy and F1 (threshold evaluate.threshold) "
                    "to the metrics JSON.")
    add_manifest_options(p, "score", several=DETECTION_SPLITS)
    add_input(p, "--checkpoint", "trained WCBnet checkpoint", metavar="CKPT")
    p.add_argument("--scores", required=True, metavar="CSV", help="output: id,label,score")
    p.add_argument("--metrics", required=True, metavar="JSON", help="output: image-level metrics")
    add_config_options(p, sections=('train', 'evaluate'))
