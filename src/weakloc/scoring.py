"""Scoring a folder of localization maps against ground-truth masks (``weakloc score``).

Inputs:

- **Prediction maps**: ``PRED_DIR/<id><suffix>``, 8-bit grayscale PNG written by
  :func:`weakloc.io.write_prob` (0..255 = probability 0..1, read with :func:`weakloc.io.read_prob`).
  Without a suffix, a ``weakloc localize`` output folder is recognised and read as it is
  (``<id>_prob.png``); any other folder is read as ``<id>.png`` (:func:`detect_suffix`).
- **Ground truth**, either ``GT_DIR/<id>.png`` (binary masks; every mask in the folder is an
  image to score) or a manifest and a split (the split's rows with ``label == 1`` and a mask
  path; authentic rows and rows with unknown ground truth are not scored).

Policies (decided here, stated in docs/evaluation.md):

- A **missing map** counts as an all-zero map (the method said "nothing manipulated"): it
  scores F1 = IoU = MCC = 0, its AUC is undefined (constant map) and it is counted in
  ``n_missing`` and listed in the per-image ``missing`` column. Skipping it silently would
  flatter a method that fails on hard images.
- A map whose **size differs** from its mask is an error naming the file. Maps are never
  resized: a resized map would be scored on pixels the method never predicted.
- A mask with **no manipulated pixel** is excluded from the pixel metrics and counted in
  ``n_empty_gt`` (see :mod:`weakloc.metrics`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from weakloc.errors import WeaklocError
from weakloc.intervals import BootstrapSettings, localization_intervals
from weakloc.io import atomic_path, read_mask, read_prob, write_text_atomic
from weakloc.manifest import masked_rows
from weakloc.metrics import PIXEL_METRICS, ScoreHistogram, histogram_metrics, summarize_localization

CSV_COLUMNS = ["id", *PIXEL_METRICS, "best_threshold", "missing"]


def ground_truth_from_dir(gt_dir: str | Path) -> list[tuple[str, Path]]:
    """``(id, mask path)`` for every ``<id>.png`` in ``gt_dir``, sorted by id."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise WeaklocError(f"{gt_dir}: ground-truth folder not found")
    items = sorted((p.stem, p) for p in gt_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not items:
        raise WeaklocError(f"{gt_dir}: no <id>.png masks in the ground-truth folder")
    return items


def ground_truth_from_manifest(manifest: str | Path, split: str = "test") -> list[tuple[str, Path]]:
    """``(id, mask path)`` of the manipulated images of ``split`` whose mask is known."""
    rows = masked_rows(manifest, split)
    return [(str(i), Path(m)) for i, m in zip(rows["id"], rows["mask"], strict=True)]


LOCALIZE_SUFFIX = "_prob.png"


def detect_suffix(pred_dir: str | Path) -> str:
    """The map suffix of a prediction folder: ``_prob.png`` for a ``weakloc localize`` output, else ``.png``.

    A localize folder is recognised by its ``scores.csv`` with a ``prob`` column, or by PNG
    files that all end in ``_prob.png`` or ``_mask.png`` (at least one ``_prob.png``).
    """
    pred_dir = Path(pred_dir)
    scores = pred_dir / "scores.csv"
    if scores.is_file():
        try:
            header = scores.read_text(encoding="utf-8").splitlines()[:1]
        except (OSError, UnicodeDecodeError):
            header = []
        if header and "prob" in [c.strip() for c in header[0].split(",")]:
            return LOCALIZE_SUFFIX
    pngs = [p.name for p in pred_dir.glob("*.png")] if pred_dir.is_dir() else []
    if any(n.endswith(LOCALIZE_SUFFIX) for n in pngs) and all(n.endswith((LOCALIZE_SUFFIX, "_mask.png")) for n in pngs):
        return LOCALIZE_SUFFIX
    return ".png"


def score_maps(pred_dir: str | Path, gt_dir: str | Path | None = None, *, manifest: str | Path | None = None,
               split: str = "test", suffix: str | None = None, threshold: float = 0.5,
               bootstrap: BootstrapSettings | None = None, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Score ``pred_dir/<id><suffix>`` against masks from ``gt_dir`` or ``manifest``/``split``.

    ``suffix`` None: :func:`detect_suffix` (so ``weakloc localize``'s folder is read as it is).

    Returns ``(per_image, summary)``. ``per_image`` has one row per mask with columns
    ``id, f1, iou, mcc, auc, best_f1, best_threshold, missing`` (metrics NaN for an empty
    mask, ``auc`` NaN where undefined). ``summary`` is :func:`weakloc.metrics.summarize_localization`
    plus ``n_missing`` and ``suffix``; with ``bootstrap``, ``interval`` (per-image means) and
    ``dataset_level.interval`` (:func:`weakloc.intervals.localization_intervals`) and the
    settings as ``bootstrap``. Raises :class:`WeaklocError` when a folder is missing,
    a map is unreadable or its size differs from its mask.
    """
    if (gt_dir is None) == (manifest is None):
        raise WeaklocError("give exactly one ground truth: GT_DIR or --manifest")
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise WeaklocError(f"{pred_dir}: prediction folder not found")
    items = ground_truth_from_dir(gt_dir) if gt_dir is not None else ground_truth_from_manifest(manifest, split)
    if suffix is None:
        suffix = detect_suffix(pred_dir)

    rows, hists, n_missing = [], [], 0
    for image_id, mask_path in tqdm(items, desc=f"score {pred_dir.name}", unit="img", disable=not progress):
        gt = read_mask(mask_path)
        pred_path = pred_dir / f"{image_id}{suffix}"
        missing = not pred_path.exists()
        if missing:
            n_missing += 1
            pred = np.zeros(gt.shape, np.float32)
        else:
            pred = read_prob(pred_path)
            if pred.shape != gt.shape:
                raise WeaklocError(f"{pred_path}: map is {pred.shape[1]}x{pred.shape[0]} but its mask "
                                   f"{mask_path} is {gt.shape[1]}x{gt.shape[0]} (maps are never resized)")
        hist = ScoreHistogram.from_maps(pred, gt)
        hists.append(hist)
        row = {"id": image_id, **{k: math.nan for k in (*PIXEL_METRICS, "best_threshold")}, "missing": missing}
        if hist.n_pos:
            m = histogram_metrics(hist, threshold)
            row.update({k: (math.nan if m[k] is None else m[k]) for k in (*PIXEL_METRICS, "best_threshold")})
        rows.append(row)

    summary = summarize_localization(hists, threshold)
    summary["n_missing"] = n_missing
    summary["suffix"] = suffix
    if bootstrap is not None:
        summary["interval"], summary["dataset_level"]["interval"] = localization_intervals(hists, threshold, bootstrap)
        summary["bootstrap"] = bootstrap.describe()
    return pd.DataFrame(rows, columns=CSV_COLUMNS), summary


def format_summary(summary: dict) -> str:
    """A small plain-text table of a :func:`score_maps` summary."""
    def fmt(v):
        return "  n/a" if v is None else f"{v:.4f}"

    dl = summary["dataset_level"]
    lines = [f"{'':14s}" + "".join(f"{k:>10s}" for k in ("F1", "IoU", "MCC", "AUC", "bestF1*")),
             f"{'per image':14s}" + "".join(f"{fmt(summary[k]):>10s}" for k in PIXEL_METRICS)]
    if summary.get("interval"):
        iv = summary["interval"]
        lines += [f"{label:14s}" + "".join(f"{fmt(iv[k][i] if iv.get(k) else None):>10s}" for k in PIXEL_METRICS)
                  for i, label in ((0, f"  {summary['bootstrap']['level']:.0%} low"),
                                   (1, f"  {summary['bootstrap']['level']:.0%} high"))]
    lines += [f"{'dataset level':14s}" + "".join(f"{fmt(dl[k]):>10s}" for k in PIXEL_METRICS),
              f"threshold {summary['threshold']:g}; {summary['n_images']} masked images, "
              f"{summary['n_missing']} missing maps (scored as all zero), {summary['auc_excluded']} without "
              f"a defined AUC, {summary['n_empty_gt']} empty masks skipped. *bestF1 = oracle threshold."]
    return "\n".join(lines)


def write_scores(per_image: pd.DataFrame, summary: dict, json_path: str | Path | None = None,
                 csv_path: str | Path | None = None) -> None:
    """Write the summary as JSON and/or the per-image rows as CSV, atomically."""
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(summary, indent=2) + "\n")
    if csv_path is not None:
        with atomic_path(csv_path) as tmp:
            per_image.to_csv(tmp, index=False, float_format="%.6f")
