"""Pixel-level and image-level metrics of manipulation localization and detection.

The protocol is the one of WSCL and IMDL-BenCo (METHOD.md step 7):

- **Pixel level**, on manipulated images only (ground truth with at least one manipulated
  pixel). A map ``(H, W)`` of probabilities in [0, 1] is binarised as ``prob > threshold``
  (default 0.5) and compared with the ``(H, W) bool`` mask. Each metric is computed **per
  image, then averaged** over the images; the **dataset-level** variant pools all pixels of
  those images first (one confusion matrix, one ROC curve).
- Metrics: F1, IoU (Jaccard), MCC at the fixed threshold; pixel AUC (threshold-free); and
  ``best_f1``, the F1 at the best threshold **chosen with the ground truth**. ``best_f1`` is
  an ORACLE (it peeks at the mask) and must always be labelled so; it is never the method.
- **Image level**: AUC, accuracy and F1 at ``score > threshold``.

Everything is computed from a :class:`ScoreHistogram`: for each distinct prediction value,
the number of manipulated and authentic pixels that carry it. One sort per image gives all
metrics, any threshold curve, and (by merging histograms) the dataset-level numbers exactly.

Edge-case conventions (tested against scikit-learn in ``tests/test_metrics.py``):

- **Empty ground truth** (an authentic image, or a manipulated one whose mask is all zero):
  the image is excluded from the pixel metrics; callers count it (``n_empty_gt``).
- **Empty prediction** on a non-empty mask: F1 = IoU = 0 (no true positives), MCC = 0.
- **MCC** is 0 whenever one of its four marginals is zero (empty or full prediction, mask
  covering the whole image), as in ``sklearn.metrics.matthews_corrcoef``.
- **AUC** is undefined when the prediction is constant over the image or the mask covers the
  whole image. Such an image is excluded from the AUC mean and counted in ``auc_excluded``;
  it is never scored 0.5 silently. (The dataset-level AUC pools pixels, so it includes them.)
- **best_f1** sweeps every distinct prediction value ``t`` with ``prob >= t`` (the rule of
  ``sklearn.metrics.precision_recall_curve``); predicting nothing scores 0, so the oracle of
  a constant map is the F1 of predicting the whole image.
- Thresholds are compared in the prediction's own floating type, so a map read as
  ``value / 255`` in float32 and a threshold such as 0.2 (= 51/255) compare as equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from weakloc.errors import WeaklocError

PIXEL_METRICS = ("f1", "iou", "mcc", "auc", "best_f1")
"""Names of the pixel metrics, in table order. ``best_f1`` is the oracle."""

CURVE_THRESHOLDS = np.round(np.arange(0, 21) * 0.05, 2)
"""Thresholds 0.00, 0.05, ..., 1.00 of :func:`f1_threshold_curve`."""


# --------------------------------------------------------------------------------------
# Confusion-count formulas (vectorised over arrays of counts)
# --------------------------------------------------------------------------------------

def f1_from_counts(tp, fp, fn):
    """F1 = 2TP / (2TP + FP + FN); 0 where the denominator is 0 (sklearn's zero_division=0)."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)


def iou_from_counts(tp, fp, fn):
    """IoU (Jaccard) = TP / (TP + FP + FN); 0 where the denominator is 0."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    den = tp + fp + fn
    return np.divide(tp, den, out=np.zeros_like(den), where=den > 0)


def mcc_from_counts(tp, fp, fn, tn):
    """Matthews correlation coefficient; 0 where any marginal is 0 (sklearn's convention)."""
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    num = tp * tn - fp * fn
    return np.divide(num, np.sqrt(den), out=np.zeros_like(den), where=den > 0)


# --------------------------------------------------------------------------------------
# Score histogram: the sufficient statistic of every pixel metric
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreHistogram:
    """Pixel counts per distinct prediction value of one image (or of pooled images).

    ``values``: ``(K,)`` float, strictly increasing distinct prediction values.
    ``pos``: ``(K,)`` int64, manipulated (ground-truth positive) pixels at each value.
    ``neg``: ``(K,)`` int64, authentic pixels at each value.
    """

    values: np.ndarray
    pos: np.ndarray
    neg: np.ndarray

    @classmethod
    def from_maps(cls, pred: np.ndarray, gt: np.ndarray) -> ScoreHistogram:
        """Build from a prediction ``(H, W)`` float in [0, 1] and a mask ``(H, W)`` bool.

        Raises :class:`WeaklocError` if the shapes differ or a value is outside [0, 1] (or NaN).
        """
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise WeaklocError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
        if not np.issubdtype(pred.dtype, np.floating):
            pred = pred.astype(np.float64)
        values, inverse = np.unique(pred.ravel(), return_inverse=True)
        if values.size and not (values[0] >= 0 and values[-1] <= 1):  # NaN sorts last and fails too
            raise WeaklocError(f"prediction values must be probabilities in [0, 1], got "
                               f"{values[0]:g}..{values[-1]:g}")
        gt_flat = gt.ravel().astype(bool)
        pos = np.bincount(inverse[gt_flat], minlength=values.size).astype(np.int64)
        total = np.bincount(inverse, minlength=values.size).astype(np.int64)
        return cls(values, pos, total - pos)

    @classmethod
    def pooled(cls, histograms: Iterable[ScoreHistogram]) -> ScoreHistogram:
        """Merge histograms: the histogram of all their pixels together (dataset level)."""
        hists = list(histograms)
        if not hists:
            return cls(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
        dtype = np.result_type(*(h.values.dtype for h in hists))
        values, inverse = np.unique(np.concatenate([h.values.astype(dtype) for h in hists]), return_inverse=True)
        pos = np.bincount(inverse, weights=np.concatenate([h.pos for h in hists]), minlength=values.size)
        neg = np.bincount(inverse, weights=np.concatenate([h.neg for h in hists]), minlength=values.size)
        return cls(values, np.rint(pos).astype(np.int64), np.rint(neg).astype(np.int64))

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())

    @property
    def n_neg(self) -> int:
        return int(self.neg.sum())

    def confusion(self, thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(TP, FP, FN, TN) of ``prob > t`` for each threshold ``t`` (scalar or array)."""
        t = np.asarray(thresholds, dtype=self.values.dtype if self.values.size else np.float64)
        # counts of values <= t  ->  predicted negative
        k = np.searchsorted(self.values, t, side="right")
        cum_pos = np.concatenate([[0], np.cumsum(self.pos)])
        cum_neg = np.concatenate([[0], np.cumsum(self.neg)])
        fn = cum_pos[k]
        tn = cum_neg[k]
        return self.n_pos - fn, self.n_neg - tn, fn, tn

    def auc(self) -> float | None:
        """Area under the ROC curve with ties counted half; None if undefined.

        Undefined when there is a single class or a single prediction value.
        """
        n_pos, n_neg = self.n_pos, self.n_neg
        if n_pos == 0 or n_neg == 0 or self.values.size < 2:
            return None
        neg_below = np.cumsum(self.neg) - self.neg
        wins = np.dot(self.pos.astype(np.float64), neg_below + 0.5 * self.neg)
        return float(wins / (float(n_pos) * float(n_neg)))

    def best_f1(self) -> tuple[float, float | None]:
        """ORACLE: the highest F1 over thresholds ``prob >= t`` and the ``t`` that reaches it.

        ``t`` runs over every distinct prediction value (as ``precision_recall_curve``);
        returns ``(0.0, None)`` when there is no manipulated pixel.
        """
        if self.n_pos == 0 or self.values.size == 0:
            return 0.0, None
        # predicted positive = values >= values[i]: suffix sums
        tp = np.cumsum(self.pos[::-1])[::-1]
        fp = np.cumsum(self.neg[::-1])[::-1]
        f1 = f1_from_counts(tp, fp, self.n_pos - tp)
        i = int(np.argmax(f1))
        return float(f1[i]), float(self.values[i])


# --------------------------------------------------------------------------------------
# Per-image and summarised pixel metrics
# --------------------------------------------------------------------------------------

def histogram_metrics(hist: ScoreHistogram, threshold: float = 0.5) -> dict:
    """F1, IoU, MCC at ``prob > threshold``, AUC (None if undefined) and best_f1 (oracle)."""
    tp, fp, fn, tn = hist.confusion(threshold)
    best, best_t = hist.best_f1()
    return {
        "f1": float(f1_from_counts(tp, fp, fn)),
        "iou": float(iou_from_counts(tp, fp, fn)),
        "mcc": float(mcc_from_counts(tp, fp, fn, tn)),
        "auc": hist.auc(),
        "best_f1": best,
        "best_threshold": best_t,
    }


def pixel_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> dict:
    """Metrics of one image: ``pred`` ``(H, W)`` float in [0, 1], ``gt`` ``(H, W)`` bool.

    Returns ``{f1, iou, mcc, auc, best_f1, best_threshold}``; ``auc`` is None when undefined
    (constant prediction, or the mask covers the image). ``best_f1`` is an ORACLE.
    Raises :class:`WeaklocError` when the mask is empty (such images are excluded).
    """
    hist = ScoreHistogram.from_maps(pred, gt)
    if hist.n_pos == 0:
        raise WeaklocError("ground-truth mask is empty: pixel metrics are defined on manipulated images only")
    return histogram_metrics(hist, threshold)


def f1_threshold_curve(histograms: Sequence[ScoreHistogram], thresholds=CURVE_THRESHOLDS) -> dict:
    """Per-image mean F1 of ``prob > t`` at each threshold (default 0.00..1.00 step 0.05).

    Returns ``{"thresholds": [...], "f1": [...]}``; images with an empty mask are skipped.
    With no usable image, ``f1`` is a list of None.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    rows = []
    for h in histograms:
        if h.n_pos == 0:
            continue
        tp, fp, fn, _ = h.confusion(thresholds)
        rows.append(f1_from_counts(tp, fp, fn))
    f1 = np.mean(rows, axis=0).tolist() if rows else [None] * thresholds.size
    return {"thresholds": [round(float(t), 6) for t in thresholds], "f1": f1}


def summarize_localization(histograms: Sequence[ScoreHistogram], threshold: float = 0.5) -> dict:
    """Summary of a set of images' histograms (images with an empty mask are skipped).

    Returns per-image means ``f1, iou, mcc, auc, best_f1`` (``auc`` over the images where it is
    defined), ``n_images`` (masked images used), ``n_empty_gt`` (skipped), ``auc_excluded``,
    ``threshold``, ``dataset_level`` ``{f1, iou, mcc, auc, best_f1, best_threshold}`` from
    all pixels pooled, and ``threshold_curve``. Means are None when no image is usable.
    """
    used = [h for h in histograms if h.n_pos > 0]
    per = [histogram_metrics(h, threshold) for h in used]
    out: dict = {}
    for name in PIXEL_METRICS:
        vals = [m[name] for m in per if m[name] is not None]
        out[name] = float(np.mean(vals)) if vals else None
    out["n_images"] = len(used)
    out["n_empty_gt"] = len(histograms) - len(used)
    out["auc_excluded"] = sum(m["auc"] is None for m in per)
    out["threshold"] = float(threshold)
    if used:
        pooled = histogram_metrics(ScoreHistogram.pooled(used), threshold)
    else:
        pooled = {k: None for k in (*PIXEL_METRICS, "best_threshold")}
    out["dataset_level"] = pooled
    out["threshold_curve"] = f1_threshold_curve(used)
    return out


# --------------------------------------------------------------------------------------
# Image level (detection)
# --------------------------------------------------------------------------------------

def sensitivity_specificity_f1(sensitivity: float, specificity: float) -> float:
    """Image F1 of the cross-dataset protocol: ``2 sen spe / (sen + spe)``, 0 when both are 0.

    MVSS-Net's and WSCL's image-level F1 (WSCL's public code, ``utils/misc.py``
    ``calculate_img_score``): unlike the F1 of one class it counts authentic images correctly
    passed (specificity) as much as manipulated images found (sensitivity).
    """
    sen, spe = float(sensitivity), float(specificity)
    return 0.0 if sen + spe == 0 else 2.0 * sen * spe / (sen + spe)


def combined_f1(pixel_f1: float | None, image_f1: float | None) -> float | None:
    """Combined F1 of the WSCL / MVSS-Net protocol: the harmonic mean of pixel F1 and image F1.

    ``pixel_f1`` is the per-image mean pixel F1 at the fixed threshold over the manipulated
    images, ``image_f1`` the image F1 of :func:`image_metrics` (``image_f1``: harmonic mean of
    sensitivity and specificity at ``score > threshold``; WSCL's code combines these two with
    ``scipy.stats.hmean``). Returns 0 when both are 0 and None when either is unknown.
    """
    if pixel_f1 is None or image_f1 is None:
        return None
    p, i = float(pixel_f1), float(image_f1)
    if not (0.0 <= p <= 1.0 and 0.0 <= i <= 1.0):
        raise WeaklocError(f"combined_f1: F1 values must be in [0, 1], got pixel {p:g} and image {i:g}")
    return 0.0 if p + i == 0 else 2.0 * p * i / (p + i)


def image_metrics(labels, scores, threshold: float = 0.5) -> dict:
    """Detection metrics from image labels ``(N,)`` in {0, 1} and scores ``(N,)`` in [0, 1].

    Returns ``{auc, accuracy, f1, precision, recall, specificity, image_f1, threshold, n_images,
    n_positive}``. ``f1`` is the F1 of the class "manipulated"; ``image_f1`` is the image F1 of
    the cross-dataset protocol (MVSS-Net, WSCL): the harmonic mean of sensitivity (recall) and
    specificity, 0 when both are 0 (:func:`sensitivity_specificity_f1`).
    A score ``> threshold`` predicts "manipulated". ``auc`` counts ties half; it is None
    when only one class is present, and ``auc_undefined`` then gives the reason. F1 is 0
    when there is no positive label and no positive prediction (sklearn's zero_division=0).
    Raises :class:`WeaklocError` on empty input, mismatched lengths, labels outside {0, 1}
    or scores outside [0, 1] (pass probabilities, not logits).
    """
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size != s.size:
        raise WeaklocError(f"image_metrics: {y.size} labels but {s.size} scores")
    if y.size == 0:
        raise WeaklocError("image_metrics: no images to score")
    if not np.all(np.isin(y, (0, 1))):
        raise WeaklocError("image_metrics: labels must be 0 (authentic) or 1 (manipulated)")
    if not np.all(np.isfinite(s)):
        raise WeaklocError("image_metrics: scores contain NaN or infinity")
    if s.min() < 0 or s.max() > 1:
        raise WeaklocError(f"image_metrics: scores must be probabilities in [0, 1], got {s.min():g}..{s.max():g}")
    y = y.astype(bool)
    pred = s > threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    out = {
        "auc": None,
        "accuracy": (tp + tn) / y.size,
        "f1": float(f1_from_counts(tp, fp, fn)),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "threshold": float(threshold),
        "n_images": int(y.size),
        "n_positive": int(y.sum()),
    }
    out["image_f1"] = sensitivity_specificity_f1(out["recall"], out["specificity"])
    if 0 < out["n_positive"] < y.size:
        out["auc"] = ScoreHistogram.from_maps(s, y).auc()
        if out["auc"] is None:  # every score identical: both classes present, ranking undefined
            out["auc"] = 0.5
    else:
        only = "manipulated" if out["n_positive"] else "authentic"
        out["auc_undefined"] = f"only {only} images: AUC needs both classes"
    return out
