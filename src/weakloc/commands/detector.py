"""weakloc sub-commands: detector (``train``, ``detect``).

- ``weakloc train --manifest M --seed S --out CKPT --log CSV`` (:func:`weakloc.training.train_wcbnet`).
- ``weakloc detect --manifest M --split test --checkpoint CKPT --scores CSV --metrics JSON``
  (:func:`weakloc.detection.detect`).
"""

from __future__ import annotations

import argparse
import json
import sys

from weakloc.commands import add_command, add_config_options, add_input, add_manifest_options, add_out, config_from_args


def _run_train(args: argparse.Namespace) -> int:
    from weakloc.training import train_wcbnet

    summary = train_wcbnet(args.manifest, config_from_args(args), args.seed, args.out, args.log)
    auc = summary["best_val_auc"]
    print(f"train: best epoch {summary['best_epoch']} (val AUC {auc:.4f}), {summary['epochs_run']} epochs, "
          f"stopped by {summary['stop_reason']}, {summary['seconds']:.0f} s; wrote {args.out}", file=sys.stderr)
    return 0


def _run_detect(args: argparse.Namespace) -> int:
    from weakloc.detection import detect

    config = config_from_args(args)
    metrics = detect(args.manifest, args.checkpoint, args.split, args.scores, args.metrics,
                     threshold=float(config["evaluate"]["threshold"]), device=config["train"]["device"])
    print(json.dumps({k: metrics[k] for k in ("auc", "accuracy", "f1") if k in metrics}), file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = add_command(subparsers, "train", _run_train, "train WCBnet with image-level labels only",
                    "Train WCBnet on the manifest's train split (image labels only; masks are never read), "
                    "select the best epoch on validation AUC and write it to CKPT. The per-epoch log goes to "
                    "CSV. After every epoch a resume state is kept in CKPT's folder under resume/last.pt: "
                    "running the same command again continues from the last completed epoch "
                    "(docs/detector.md).")
    add_input(p, "--manifest", "manifest of the prepared dataset", metavar="CSV")
    p.add_argument("--seed", required=True, type=int, metavar="S", help="training seed")
    add_out(p, "CKPT", "where the best checkpoint is written (.pt)")
    p.add_argument("--log", required=True, metavar="CSV",
                   help="per-epoch log: epoch,train_loss,val_loss,val_auc,lr,seconds")
    add_config_options(p, sections=('sel', 'model', 'train'))

    p = add_command(subparsers, "detect", _run_detect, "score images of a split with a trained WCBnet (image level)",
                    "Score every image of the split at full resolution; write id,label,score (probability) "
                    "to the scores CSV and image-level AUC, accuracy and F1 (threshold evaluate.threshold) "
                    "to the metrics JSON.")
    add_manifest_options(p, "score")
    add_input(p, "--checkpoint", "trained WCBnet checkpoint", metavar="CKPT")
    p.add_argument("--scores", required=True, metavar="CSV", help="output: id,label,score")
    p.add_argument("--metrics", required=True, metavar="JSON", help="output: image-level metrics")
    add_config_options(p, sections=('train', 'evaluate'))
