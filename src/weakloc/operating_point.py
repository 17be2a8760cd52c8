"""The image-level operating point: the verdict threshold chosen on validation data.

``weakloc train`` calls :func:`choose_threshold` on the validation probabilities of the best
epoch (the model it saves) and stores the result in the checkpoint's ``meta`` as
``image_threshold``; ``weakloc localize`` (scores.csv's ``verdict``, the gallery) reads it with
:func:`operating_point`. The criterion is the maximum of Youden's J = TPR - FPR [ours: a
choice, not the paper's]: it does not depend on the validation split's class balance, which
a user's photos need not share (max F1 would). Checkpoints written before this existed have
no ``image_threshold``; their verdict uses 0.5 and says so.

Numpy only (no torch, no pandas), so ``weakloc localize`` stays quick to start.
"""

from __future__ import annotations

import numpy as np

from weakloc.errors import WeaklocError

#: How :func:`choose_threshold` picks the image-level operating point (stored in checkpoints).
THRESHOLD_CRITERION = "youden_j"
#: The verdict threshold of a checkpoint that stores none (written before operating points existed).
DEFAULT_THRESHOLD = 0.5


def choose_threshold(labels, scores) -> dict | None:
    """The image-level operating point that maximises Youden's J on validation scores.

    ``labels`` ``(N,)`` in {0, 1} and ``scores`` ``(N,)`` probabilities of the validation
    split. A score ``> threshold`` is the verdict "manipulated" (as in
    :func:`weakloc.metrics.image_metrics`). Among the cuts between consecutive distinct
    scores, the one with the largest ``J = TPR - FPR`` wins (prevalence-free, so an
    unbalanced validation split does not move it); ties go to the highest cut (fewer false
    alarms). The threshold is the midpoint between the lowest score called manipulated and
    the next lower score (halfway between the highest score and 1 when no cut has J > 0), so
    it is never equal to a validation score.

    Returns ``{"value", "criterion", "j", "tpr", "fpr", "f1", "n"}`` or None when only one
    class is present (no operating point can be chosen).
    """
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size != s.size:
        raise WeaklocError(f"choose_threshold: {y.size} labels but {s.size} scores")
    if not np.all(np.isfinite(s)) or (s.size and (s.min() < 0 or s.max() > 1)):
        raise WeaklocError("choose_threshold: scores must be finite probabilities in [0, 1]")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    last = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])  # last position of each distinct score
    values = ss[last]                                      # distinct scores, highest first
    tp = np.r_[0, np.cumsum(yy)[last]]    # cut k calls the k highest distinct scores manipulated
    fp = np.r_[0, np.cumsum(~yy)[last]]
    j_scaled = tp * n_neg - fp * n_pos    # J * n_pos * n_neg, in integers: ties are exact
    # cut 0 (nothing manipulated) and the last cut (everything) both have J = 0, so the first
    # maximum (the highest cut among ties) is never the last cut and always has a score below it
    k = int(np.flatnonzero(j_scaled == j_scaled.max())[0])
    value = (values[0] + 1.0) / 2.0 if k == 0 else (values[k - 1] + values[k]) / 2.0
    tpk, fpk = int(tp[k]), int(fp[k])
    fnk = n_pos - tpk
    return {"value": float(value), "criterion": THRESHOLD_CRITERION, "j": float(j_scaled[k]) / (n_pos * n_neg),
            "tpr": tpk / n_pos, "fpr": fpk / n_neg,
            "f1": 2 * tpk / (2 * tpk + fpk + fnk), "n": int(y.size)}


def operating_point(meta: dict) -> tuple[float, str]:
    """``(threshold, source)`` of a checkpoint's image-level verdict.

    ``source`` is ``"validation"`` when the checkpoint stores the threshold chosen on its
    validation split (``meta["image_threshold"]``, :func:`choose_threshold`), else
    ``"default"`` with :data:`DEFAULT_THRESHOLD` (checkpoints written before it existed).
    """
    point = meta.get("image_threshold")
    if isinstance(point, dict) and isinstance(point.get("value"), (int, float)):
        return float(point["value"]), "validation"
    return DEFAULT_THRESHOLD, "default"
