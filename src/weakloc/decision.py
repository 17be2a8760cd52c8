"""A decision rule calibrated per image: which pixels of a map become the mask [ours].

Thresholding a map at 0.5 treats every image alike, although the maps' *ranking* inside an
image is good and their *level* is not (docs/localization.md): an over-confident map flags
several times the true area, and an authentic photo gets false alarms. This rule decides per
image, from the image's own map:

1. **Units.** The candidate masks are unions of units ranked by their map value: the regions
   of a partition (``unit = region``, value = the region's mean of the map) or the map's
   256 grey levels (``unit = pixel``). A candidate is a top set: every unit ranked above it.
2. **A prior on the manipulated fraction instead of a per-pixel base rate.** Among the
   top sets of area fraction ``f <= max_fraction``, the chosen one maximises the two-class
   separation of the map (Otsu's between-class variance ``f (1 - f) (mu_in - mu_out)^2``)
   times a ``Beta(fraction_a, fraction_b)`` density on ``f``:
   ``log J(f) = log f(1-f) + 2 log(mu_in - mu_out) + (a - 1) log f + (b - 1) log(1 - f)``.
   ``a = b = 1`` is plain Otsu; ``b > 1`` favours small masks, as real forgeries are.
3. **Evidence against the rest of the image.** The chosen set is kept only if its mean
   stands ``min_contrast`` above the rest's (``mu_in - mu_out``); otherwise the mask is empty.
4. **The image score as a gate** (``mask_min_score``). An image whose detector probability
   is below ``mask_min_score`` gets an empty mask (authentic photos are the common case).
   ``mask_min_score = "verdict"`` uses the checkpoint's own operating point instead (the image
   threshold chosen on its validation split, :mod:`weakloc.operating_point`): a mask only for
   an image whose verdict is "manipulated" (probability above that threshold).

The written map stays a probability whose ``> 0.5`` is exactly the mask: mask pixels get
``0.51 + 0.49 P`` and the others ``0.49 P`` (``P`` the input map), so inside each class the
ranking of ``P`` is kept and the 8-bit file (``value / 255``) still thresholds exactly at
0.5 (``>= 130`` inside, ``<= 125`` outside).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from weakloc.config import Section
from weakloc.errors import WeaklocError
from weakloc.io import index_labels

#: ``mask_min_score`` value: a mask only above the checkpoint's operating point (its verdict threshold).
VERDICT = "verdict"
#: The two bands of the written map: mask pixels in [INSIDE, 1], the rest in [0, OUTSIDE].
INSIDE, OUTSIDE = 0.51, 0.49


@dataclass(frozen=True)
class DecisionSettings(Section):
    """The ``refine.decision`` config section (see the schema for each key; build it with
    ``from_section``, which checks a mapping against the schema and fills the keys it lacks)."""

    SECTION = "refine.decision"

    rule: str
    unit: str
    fraction_a: float
    fraction_b: float
    max_fraction: float
    min_contrast: float
    mask_min_score: float | str


def _units(prob: np.ndarray, partition: np.ndarray | None, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, weight, label map) of the units: region means or 256 grey levels."""
    if unit == "region":
        if partition is None:
            raise WeaklocError("decision: unit 'region' needs a partition")
        part = index_labels(partition)
        if part.shape != prob.shape:
            raise WeaklocError(f"decision: partition {part.shape} and map {prob.shape} differ in size")
        n = np.bincount(part.ravel()).astype(np.float64)
        s = np.bincount(part.ravel(), weights=prob.ravel().astype(np.float64), minlength=n.size)
        return s / np.maximum(n, 1), n, part
    levels = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.intp)
    n = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    s = np.bincount(levels.ravel(), weights=prob.ravel().astype(np.float64), minlength=256)
    return s / np.maximum(n, 1), n, levels


def choose_mask(prob: np.ndarray, partition: np.ndarray | None, settings: DecisionSettings) -> tuple[np.ndarray, dict]:
    """The calibrated mask ``(H, W) bool`` of a map (before the gate) and what decided it.

    Returns ``(mask, info)`` with ``info = {fraction, contrast, kept}``.
    """
    s = settings
    value, weight, labels = _units(prob, partition, s.unit)
    used = weight > 0
    idx = np.flatnonzero(used)
    order = idx[np.argsort(-value[idx], kind="stable")]
    w = weight[order]
    v = value[order]
    total = w.sum()
    cw = np.cumsum(w)
    cs = np.cumsum(w * v)
    f = cw / total
    mu_in = cs / cw
    rest = total - cw
    mu_out = np.divide(cs[-1] - cs, rest, out=np.zeros_like(rest), where=rest > 0)
    delta = mu_in - mu_out
    ok = (f <= s.max_fraction) & (rest > 0) & (delta > 0)
    info = {"fraction": 0.0, "contrast": 0.0, "kept": False}
    if not ok.any():
        return np.zeros(prob.shape, dtype=bool), info
    with np.errstate(divide="ignore", invalid="ignore"):
        logj = (np.log(f * (1 - f)) + 2 * np.log(delta) + (s.fraction_a - 1) * np.log(f)
                + (s.fraction_b - 1) * np.log1p(-f))
    logj = np.where(ok, logj, -np.inf)
    k = int(np.argmax(logj))
    info["fraction"], info["contrast"] = float(f[k]), float(delta[k])
    if delta[k] < s.min_contrast:
        return np.zeros(prob.shape, dtype=bool), info
    chosen = np.zeros(weight.size, dtype=bool)
    chosen[order[:k + 1]] = True
    info["kept"] = True
    return chosen[labels], info


def gated(image_prob: float | None, settings: DecisionSettings, image_threshold: float | None = None) -> bool:
    """Whether ``mask_min_score`` empties the mask of an image with detector probability ``image_prob``.

    A number ``mask_min_score > 0`` empties it when ``image_prob < mask_min_score``; ``"verdict"``
    when ``image_prob <= image_threshold`` (the verdict "manipulated" is ``score > threshold``), so
    ``image_threshold`` (the checkpoint's operating point) must then be given.
    """
    floor = settings.mask_min_score
    if floor == VERDICT:
        if image_threshold is None:
            raise WeaklocError("decision: mask_min_score 'verdict' needs the checkpoint's operating point "
                               "(image threshold)")
        if image_prob is None:
            raise WeaklocError("decision: mask_min_score needs the image-level probability")
        return float(image_prob) <= float(image_threshold)
    if floor > 0 and image_prob is None:
        raise WeaklocError("decision: mask_min_score needs the image-level probability")
    return floor > 0 and float(image_prob) < floor


def calibrated_map(prob: np.ndarray, partition: np.ndarray | None, image_prob: float | None,
                   settings: DecisionSettings, image_threshold: float | None = None) -> np.ndarray:
    """The map written under the calibrated rule: ``(H, W) float32`` whose ``> 0.5`` is the mask.

    ``image_prob`` (the detector's image-level probability) and, for ``mask_min_score = "verdict"``,
    ``image_threshold`` (the checkpoint's operating point) may empty the mask (:func:`gated`).
    """
    p = np.nan_to_num(np.asarray(prob, dtype=np.float32), nan=0.0)
    np.clip(p, 0.0, 1.0, out=p)
    if p.ndim != 2:
        raise WeaklocError(f"decision: the map must be (H, W), got shape {p.shape}")
    if gated(image_prob, settings, image_threshold):
        mask = np.zeros(p.shape, dtype=bool)
    else:
        mask, _ = choose_mask(p, partition, settings)
    # INSIDE + (1 - INSIDE) p on the mask, OUTSIDE p elsewhere, computed in place (no full-size temporaries)
    inside = p[mask]
    p *= np.float32(OUTSIDE)
    inside *= np.float32(1 - INSIDE)
    inside += np.float32(INSIDE)
    p[mask] = inside
    return p


def apply_decision(prob: np.ndarray, partitions, image_prob: float | None,
                   section: DecisionSettings | Mapping | None, image_threshold: float | None = None) -> np.ndarray:
    """``prob`` unchanged under ``rule = threshold``, else :func:`calibrated_map` with the first partition.

    ``section``: the ``refine.decision`` settings, or a mapping of them (missing keys: the schema's defaults);
    ``image_threshold``: the checkpoint's operating point, for ``mask_min_score = "verdict"``.
    """
    settings = section if isinstance(section, DecisionSettings) else DecisionSettings.from_section(section)
    if settings.rule == "threshold":
        return prob
    part = partitions[0] if (settings.unit == "region" and partitions) else None
    return calibrated_map(prob, part, image_prob, settings, image_threshold)


def with_rule(refine_section: Mapping, rule: str) -> dict:
    """A copy of a ``refine`` section whose ``decision.rule`` is ``rule`` (its other keys kept):
    how a benchmark scores one rule whatever the config's default is."""
    section = copy.deepcopy(dict(refine_section))
    section["decision"] = {**section.get("decision", {}), "rule": rule}
    return section
