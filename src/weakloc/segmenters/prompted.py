"""CAM-prompted Segment Anything (``sam_prompt``) [ours]: SAM asked about the map's peaks.

The automatic-mask mode of :mod:`weakloc.segmenters.sam` prompts SAM with a regular grid of
points and knows nothing of the detector. This mode asks SAM only about the places the
coarse (fused) map points at, as weakly-supervised segmentation with SAM does (SEPL,
BoxPromptIML): one image embedding, then one prompt decode per peak.

Prompts, from the coarse map ``C`` (:func:`map_prompts`):

1. ``C`` is smoothed (Gaussian, ``sigma = smooth * max(H, W)``) and its background level
   ``t`` is its median.
2. Peaks are the local maxima (over a window of an eighth of the image side) whose value
   stands at least half-way from ``t`` to the map's maximum; the ``n_prompts`` highest are
   kept, one per connected component.
3. Each peak gives a positive point and/or (``prompts``) a box: the box is the bounding box,
   padded by 5 % of the image side, of the connected component around the peak where the
   smoothed map stays at least half-way from ``t`` to the peak; the point is the pixel of
   that component's core (at least 3/4 of the way up) nearest the core's centroid.

SAM returns three candidate masks per prompt (``multimask_output``); the one kept is the
one that agrees best with the map around that peak: the highest soft IoU with
``u = clip((C - t) / (peak - t), 0, 1)``. The kept masks become a partition by
:func:`weakloc.segmenters.partition.masks_to_partition` (the rest of the image forms its
own connected regions), which the Bayesian refinement uses like any other.

Because it needs the map, this segmenter is called as ``seg(rgb, coarse)`` (its
``needs_map`` attribute is True): ``weakloc localize --segmenter sam_prompt`` and the
library's :class:`weakloc.pipeline.Localizer` pass the fused map; ``weakloc segment``,
which runs before any map exists, refuses it.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from weakloc.errors import WeaklocError
from weakloc.segmenters.partition import check_rgb, masks_to_partition


def map_prompts(coarse: np.ndarray, n_prompts: int, smooth: float) -> list[dict]:
    """Prompts from the peaks of a coarse map ``(H, W)`` in [0, 1].

    Returns up to ``n_prompts`` dicts, highest peak first, each with ``point`` ``(x, y)``,
    ``box`` ``(x0, y0, x1, y1)`` (pixels, inclusive-exclusive), ``peak`` and ``level``
    (the background level ``t``). An image whose map has no spread gives no prompt.
    """
    from scipy.ndimage import gaussian_filter, label, maximum_filter

    c = np.asarray(coarse, dtype=np.float32)
    if c.ndim != 2:
        raise WeaklocError(f"sam_prompt: the coarse map must be (H, W), got shape {c.shape}")
    h, w = c.shape
    side = max(h, w)
    s = gaussian_filter(c, sigma=max(smooth * side, 0.5)) if smooth > 0 else c
    t = float(np.median(s))
    top = float(s.max())
    if top - t < 1e-4:
        return []
    win = max(3, side // 8)
    is_peak = (s == maximum_filter(s, size=win, mode="nearest")) & (s >= t + 0.5 * (top - t))
    ys, xs = np.nonzero(is_peak)
    order = np.argsort(-s[ys, xs], kind="stable")
    out: list[dict] = []
    taken = np.zeros((h, w), dtype=bool)
    pad = int(round(0.05 * side))
    for k in order:
        y, x = int(ys[k]), int(xs[k])
        if taken[y, x]:
            continue  # a plateau or a second maximum inside a component already prompted
        peak = float(s[y, x])
        comp, _ = label(s >= t + 0.5 * (peak - t))
        region = comp == comp[y, x]
        taken |= region
        rows, cols = np.nonzero(region)
        box = (max(0, int(cols.min()) - pad), max(0, int(rows.min()) - pad),
               min(w, int(cols.max()) + 1 + pad), min(h, int(rows.max()) + 1 + pad))
        # the point: the pixel of the peak's core (at least 3/4 of the way up) nearest the
        # core's centroid, so a plateau is prompted in its middle, never on its corner
        core = region & (s >= t + 0.75 * (peak - t))
        cy, cx = np.nonzero(core)
        j = int(np.argmin((cy - cy.mean()) ** 2 + (cx - cx.mean()) ** 2))
        out.append({"point": (int(cx[j]), int(cy[j])), "box": box, "peak": peak, "level": t})
        if len(out) >= n_prompts:
            break
    return out


def soft_iou(mask: np.ndarray, u: np.ndarray) -> float:
    """``sum(min(m, u)) / sum(max(m, u))`` of a binary mask and a soft map in [0, 1]."""
    m = mask.astype(np.float32)
    den = float(np.maximum(m, u).sum())
    return float(np.minimum(m, u).sum()) / den if den > 0 else 0.0


class PromptedSamSegmenter:
    """SAM prompted with the coarse map's peaks; call as ``seg(rgb, coarse) -> partition``."""

    needs_map = True

    def __init__(self, model_type: str, checkpoint: str | None, prompts: str, n_prompts: int, smooth: float,
                 min_region: int, device: str, encoder_size: int):
        from segment_anything import SamPredictor

        from weakloc.runtime import resolve_device
        from weakloc.segmenters.sam import build_sam_model, check_encoder_size, resolve_sam_checkpoint

        size = check_encoder_size(model_type, encoder_size, "segmenters.sam_prompt")  # before any weights load
        path = resolve_sam_checkpoint(model_type, checkpoint)
        self.device = resolve_device(device, "segmenters.sam_prompt.device")
        self.model = build_sam_model(model_type, path, size).to(self.device)
        self.predictor = SamPredictor(self.model)
        self.prompts = prompts
        self.n_prompts = int(n_prompts)
        self.smooth = float(smooth)
        self.min_region = int(min_region)

    def masks(self, rgb: np.ndarray, coarse: np.ndarray) -> list[np.ndarray]:
        """One ``(H, W) bool`` mask per prompt (none when the map has no peak)."""
        rgb = check_rgb(rgb)
        coarse = np.asarray(coarse, dtype=np.float32)
        if coarse.shape != rgb.shape[:2]:
            raise WeaklocError(f"sam_prompt: coarse map {coarse.shape} and image {rgb.shape[:2]} differ in size")
        prompts = map_prompts(coarse, self.n_prompts, self.smooth)
        if not prompts:
            return []
        out = []
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.predictor.set_image(np.ascontiguousarray(rgb))  # the one image embedding
            for p in prompts:
                kw = {}
                if self.prompts in ("points", "both"):
                    kw["point_coords"] = np.array([p["point"]], dtype=np.float32)
                    kw["point_labels"] = np.array([1])
                if self.prompts in ("boxes", "both"):
                    kw["box"] = np.array(p["box"], dtype=np.float32)
                cand, _, _ = self.predictor.predict(multimask_output=True, **kw)
                span = max(p["peak"] - p["level"], 1e-6)
                u = np.clip((coarse - p["level"]) / span, 0.0, 1.0)
                best = max(range(cand.shape[0]), key=lambda i: (soft_iou(cand[i], u), -i))
                out.append(np.asarray(cand[best], dtype=bool))
        return out

    def __call__(self, rgb: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        rgb = check_rgb(rgb)
        return masks_to_partition(self.masks(rgb, coarse), rgb.shape[:2], self.min_region)
