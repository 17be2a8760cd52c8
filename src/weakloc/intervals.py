"""Bootstrap intervals of the study's metrics: how far the numbers could move with other test images.

A number measured on a test split of a few hundred images is an estimate; its interval says
how precise it is. The interval is the **percentile bootstrap** (Efron and Tibshirani 1993):
the test images are drawn ``resamples`` times with replacement, the metric is recomputed on
each draw exactly as the point estimate is, and the interval is the ``(1 - level) / 2`` and
``(1 + level) / 2`` quantiles of the recomputed values (``evaluate.bootstrap`` in the schema).

- **Image level** (:func:`detection_intervals`): AUC, accuracy, F1 and image F1 of
  :func:`weakloc.metrics.image_metrics`, resampled **within each label** (every draw keeps the
  split's numbers of manipulated and authentic images, so AUC is always defined).
- **Pixel level** (:func:`localization_intervals`): over the scored manipulated images, the
  per-image means of :data:`weakloc.metrics.PIXEL_METRICS` (an image without a defined AUC is
  left out of that draw's AUC mean, as in the point estimate) and the dataset-level F1, IoU and
  MCC from the drawn images' pooled confusion counts. (The pooled AUC and oracle F1 get none.)

The interval covers the variation over test images of one trained model; the variation over
training seeds is the ``±`` standard deviation the tables put beside it. Draws come from one
``numpy`` generator seeded with ``evaluate.bootstrap.seed``: the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from weakloc.config import Section
from weakloc.metrics import (
    PIXEL_METRICS,
    ScoreHistogram,
    f1_from_counts,
    histogram_metrics,
    iou_from_counts,
    mcc_from_counts,
)

IMAGE_KEYS = ("auc", "accuracy", "f1", "image_f1")
"""The :func:`weakloc.metrics.image_metrics` keys that get an interval."""

POOLED_KEYS = ("f1", "iou", "mcc")
"""The dataset-level (pooled) pixel metrics that get an interval."""


@dataclass(frozen=True)
class BootstrapSettings(Section):
    """The ``evaluate.bootstrap`` config section: ``resamples`` draws, coverage ``level``, ``seed``."""

    SECTION = "evaluate.bootstrap"

    resamples: int
    level: float
    seed: int

    def describe(self) -> dict:
        """What a result file records beside its intervals."""
        return {"resamples": int(self.resamples), "level": float(self.level), "seed": int(self.seed),
                "method": "percentile bootstrap over test images"}


def resample_indices(n: int, settings: BootstrapSettings, strata: np.ndarray | None = None) -> np.ndarray:
    """``(resamples, n)`` indices drawn with replacement; with ``strata``, each stratum from itself.

    With ``strata`` (one value per item, e.g. the labels), the columns of stratum ``v`` hold
    draws from the items of ``v`` only, in the order the items of ``v`` appear.
    """
    rng = np.random.default_rng(int(settings.seed))
    r = int(settings.resamples)
    if strata is None:
        return rng.integers(0, n, size=(r, n))
    strata = np.asarray(strata)
    out = np.empty((r, n), dtype=np.int64)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        out[:, members] = members[rng.integers(0, members.size, size=(r, members.size))]
    return out


def percentile_interval(values: np.ndarray, level: float) -> list[float] | None:
    """``[low, high]`` quantiles of the finite ``values`` (None when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return [float(lo), float(hi)]


def standard_error(values) -> float | None:
    """Standard error of the mean of ``values`` (sample standard deviation / sqrt(n)); None under 2 values."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None


def _rank_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise ROC AUC (ties half) of ``(R, n)`` labels and scores; every row has both classes."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)  # ties get their average rank: counted half
    n_pos = labels.sum(axis=1).astype(np.float64)
    n_neg = labels.shape[1] - n_pos
    wins = (ranks * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return wins / (n_pos * n_neg)


def detection_intervals(labels, scores, threshold: float, settings: BootstrapSettings) -> dict:
    """Intervals of :data:`IMAGE_KEYS` (AUC None when the split holds one class only)."""
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    idx = resample_indices(y.size, settings, strata=y)
    yy, ss = y[idx], s[idx]
    pred = ss > threshold
    tp = (pred & yy).sum(axis=1)
    fp = (pred & ~yy).sum(axis=1)
    fn = (~pred & yy).sum(axis=1)
    tn = (~pred & ~yy).sum(axis=1)
    n_pos, n_neg = tp + fn, tn + fp
    sens = np.divide(tp, n_pos, out=np.zeros(tp.shape), where=n_pos > 0)
    spec = np.divide(tn, n_neg, out=np.zeros(tn.shape), where=n_neg > 0)
    both = sens + spec
    stats = {
        "accuracy": (tp + tn) / y.size,
        "f1": f1_from_counts(tp, fp, fn),
        "image_f1": np.divide(2 * sens * spec, both, out=np.zeros(both.shape), where=both > 0),
    }
    out = {k: percentile_interval(v, settings.level) for k, v in stats.items()}
    out["auc"] = percentile_interval(_rank_auc(yy, ss), settings.level) if 0 < y.sum() < y.size else None
    return {k: out[k] for k in IMAGE_KEYS}


def localization_intervals(histograms: Sequence[ScoreHistogram], threshold: float,
                           settings: BootstrapSettings) -> tuple[dict, dict]:
    """``(per_image, dataset_level)`` intervals over the images with a non-empty mask.

    ``per_image``: one interval per :data:`weakloc.metrics.PIXEL_METRICS` key (of the per-image
    mean); ``dataset_level``: one per :data:`POOLED_KEYS`. Values are None without a usable image.
    """
    used = [h for h in histograms if h.n_pos > 0]
    if not used:
        return {k: None for k in PIXEL_METRICS}, {k: None for k in POOLED_KEYS}
    per = [histogram_metrics(h, threshold) for h in used]
    table = np.array([[np.nan if m[k] is None else m[k] for k in PIXEL_METRICS] for m in per], dtype=np.float64)
    idx = resample_indices(len(used), settings)
    per_image = {}
    for j, key in enumerate(PIXEL_METRICS):
        drawn = table[idx, j]
        defined = np.isfinite(drawn)
        counts = defined.sum(axis=1)
        sums = np.where(defined, drawn, 0.0).sum(axis=1)
        means = np.divide(sums, counts, out=np.full(counts.shape, np.nan), where=counts > 0)
        per_image[key] = percentile_interval(means, settings.level)
    counts = np.array([[int(c) for c in h.confusion(threshold)] for h in used], dtype=np.int64)  # tp, fp, fn, tn
    tp, fp, fn, tn = (counts[idx, c].sum(axis=1) for c in range(4))
    pooled = {"f1": f1_from_counts(tp, fp, fn), "iou": iou_from_counts(tp, fp, fn),
              "mcc": mcc_from_counts(tp, fp, fn, tn)}
    return per_image, {k: percentile_interval(pooled[k], settings.level) for k in POOLED_KEYS}
