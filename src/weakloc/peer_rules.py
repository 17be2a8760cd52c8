"""The refinement rules of the closest peers, as comparison rows for the Bayesian refinement.

Both rules take the same fused map and the same cached partition (``weakloc segment``) as
:func:`weakloc.refinement.refine_bayes`, and select whole regions of the partition. They are
our reconstructions from the papers' descriptions [ours], not their code:

- **EdgeCAM-style segment vote** (:func:`edgecam_vote`). EdgeCAM fuses its maps by pixelwise
  max and keeps the superpixels the map marks. Here: each region's *vote* is the fraction of
  its pixels whose map value exceeds a high ``threshold``; regions whose vote is at least
  ``min_vote`` are candidates, and the ``top_k`` candidates with the highest votes are kept
  (ties broken by the larger region, then the lower id).
- **SEPL-style mask selection** (:func:`sepl_select`). SEPL keeps a SAM mask when more than
  ``inside`` (50 %) of the mask lies in the map's foreground (``map > foreground``) or the
  mask covers at least ``cover`` (85 %) of that foreground. Our segment cache holds SAM's
  masks *resolved into a partition* (:mod:`weakloc.segmenters.sam`), not the raw overlapping
  masks, so the rule is applied to the partition's regions: a region stands for a mask.

The output of both is a probability map whose ``> 0.5`` is exactly the kept regions: kept
pixels get ``0.5 + 0.5 * C``, the others ``0.5 * C`` (``C`` the coarse map), clamped so that
the 8-bit maps of :func:`weakloc.io.write_prob` keep the mask (kept >= 128/255, others <=
127/255). Inside each group the coarse map's order is preserved, so the pixel AUC still
reads the map. With no region kept the map is ``0.5 * C`` and the mask is empty.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from weakloc.blockmaps import read_blocks_csv
from weakloc.errors import WeaklocError
from weakloc.io import write_prob
from weakloc.layout import PEER_RULES

#: Row labels of the localization table.
PEER_LABELS = {"edgecam": "EdgeCAM-style", "sepl": "SEPL-style"}

_KEPT_MIN = np.float32(128.0 / 255.0)
_DROPPED_MAX = np.float32(127.0 / 255.0)


def _check(coarse: np.ndarray, partition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coarse = np.asarray(coarse, dtype=np.float32)
    part = np.asarray(partition)
    if coarse.ndim != 2:
        raise WeaklocError(f"peer rule: the coarse map must be (H, W), got shape {coarse.shape}")
    if part.shape != coarse.shape:
        raise WeaklocError(f"peer rule: partition has shape {part.shape}, the coarse map {coarse.shape}")
    if not np.issubdtype(part.dtype, np.integer) or (part.size and part.min() < 0):
        raise WeaklocError("peer rule: the partition must hold integer region ids >= 0")
    return np.nan_to_num(np.clip(coarse, 0.0, 1.0), nan=0.0), part.astype(np.intp, copy=False)


def regions_to_map(coarse: np.ndarray, partition: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The probability map of a region selection: ``> 0.5`` exactly on the kept regions.

    ``keep`` is a ``(R,) bool`` over region ids (``R > max id``). Returns ``(H, W) float32``.
    """
    coarse, part = _check(coarse, partition)
    kept = np.asarray(keep, dtype=bool)[part]
    out = np.where(kept, np.maximum(0.5 + 0.5 * coarse, _KEPT_MIN), np.minimum(0.5 * coarse, _DROPPED_MAX))
    return out.astype(np.float32, copy=False)


def _region_stats(mask: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixels of ``mask`` in each region, pixels of each region)."""
    labels = part.ravel()
    n = np.bincount(labels)
    inside = np.bincount(labels, weights=mask.ravel().astype(np.float64), minlength=n.size)
    return inside, n


def edgecam_vote(coarse: np.ndarray, partition: np.ndarray, *, threshold: float, min_vote: float,
                 top_k: int | None) -> np.ndarray:
    """EdgeCAM-style vote: keep the ``top_k`` regions with vote ``>= min_vote`` (module docstring).

    Args:
        coarse: ``(H, W)`` float map in ``[0, 1]``.
        partition: ``(H, W)`` integer region ids ``>= 0``.
        threshold: a pixel votes for its region when ``coarse > threshold``.
        min_vote: smallest fraction of voting pixels for a region to be kept.
        top_k: most regions kept (None = every region with enough votes).

    Returns:
        ``(H, W) float32`` map; ``> 0.5`` is the kept regions.
    """
    c, part = _check(coarse, partition)
    votes_in, n = _region_stats(c > threshold, part)
    vote = np.divide(votes_in, n, out=np.zeros(n.size), where=n > 0)
    candidates = np.flatnonzero((vote >= min_vote) & (n > 0))
    if top_k is not None and candidates.size > top_k:
        order = np.lexsort((candidates, -n[candidates], -vote[candidates]))  # last key is primary
        candidates = candidates[order[:top_k]]
    keep = np.zeros(n.size, bool)
    keep[candidates] = True
    return regions_to_map(c, part, keep)


def sepl_select(coarse: np.ndarray, partition: np.ndarray, *, foreground: float, inside: float,
                cover: float) -> np.ndarray:
    """SEPL-style selection: keep a region more than ``inside`` in the foreground or covering ``>= cover`` of it.

    Args:
        coarse: ``(H, W)`` float map in ``[0, 1]``.
        partition: ``(H, W)`` integer region ids ``>= 0`` (our stand-in for SAM's masks).
        foreground: the map's foreground is ``coarse > foreground``.
        inside: keep a region when its foreground fraction is ``> inside``.
        cover: keep a region when it holds ``>= cover`` of the foreground's pixels.

    Returns:
        ``(H, W) float32`` map; ``> 0.5`` is the kept regions (empty when the map has no foreground).
    """
    c, part = _check(coarse, partition)
    fg = c > foreground
    in_fg, n = _region_stats(fg, part)
    total = float(fg.sum())
    keep = np.zeros(n.size, bool)
    if total > 0:
        frac_inside = np.divide(in_fg, n, out=np.zeros(n.size), where=n > 0)
        keep = (frac_inside > inside) | (in_fg / total >= cover)
    return regions_to_map(c, part, keep)


def apply_peer_rule(rule: str, coarse: np.ndarray, partition: np.ndarray, settings: dict) -> np.ndarray:
    """Run ``rule`` (``edgecam`` or ``sepl``) with its section of ``peer_rules`` (``segmenter`` ignored)."""
    opts = {k: v for k, v in settings.items() if k != "segmenter"}
    if rule == "edgecam":
        return edgecam_vote(coarse, partition, **opts)
    if rule == "sepl":
        return sepl_select(coarse, partition, **opts)
    raise WeaklocError(f"unknown peer rule {rule!r} (choose from {', '.join(PEER_RULES)})")


def peer_segmenter(rule: str, settings: dict, segmenters: list[str]) -> str:
    """The segmenter whose cached partition ``rule`` uses.

    ``settings["segmenter"]`` if set (it must be in ``segmenters.use``); otherwise the rule's
    own kind when the study runs it (``slic`` superpixels for EdgeCAM, ``sam`` for SEPL), else
    the first of ``segmenters.use``.
    """
    chosen = settings.get("segmenter")
    if chosen is not None:
        if chosen not in segmenters:
            raise WeaklocError(f"key peer_rules.{rule}.segmenter: {chosen!r} is not in segmenters.use "
                               f"({', '.join(segmenters)})")
        return chosen
    own = {"edgecam": "slic", "sepl": "sam"}[rule]
    return own if own in segmenters else segmenters[0]


def peer_refine_folder(rule: str, fused_dir: str | Path, segment_dir: str | Path, cams_dir: str | Path,
                       out_dir: str | Path, config: dict) -> int:
    """The peer-refine step: ``out_dir/{id}.png`` for every image id of ``cams_dir/blocks.csv``.

    Per image: the fused map ``fused_dir/{id}.png`` ``(H, W)`` and the partition
    ``segment_dir/{id}.npz`` ``(H, W)`` (:func:`weakloc.refinement.read_coarse_and_partitions`),
    through ``rule`` with its settings ``config["peer_rules"][rule]``, written as an 8-bit PNG.
    Returns the number of maps written.
    """
    from weakloc.refinement import read_coarse_and_partitions

    fused_dir, seg_dir, out = Path(fused_dir), Path(segment_dir), Path(out_dir)
    df = read_blocks_csv(cams_dir)
    out.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(df["id"], desc=f"peer {rule}", unit="img", file=sys.stderr):
        coarse, (part,) = read_coarse_and_partitions(fused_dir, [seg_dir], image_id)
        write_prob(apply_peer_rule(rule, coarse, part, config["peer_rules"][rule]), out / f"{image_id}.png")
    return len(df)
