"""Object-shaped forgery regions: regions taken from a segmenter's partition of a photo [ours].

Real splices and copy-moves move *objects*, whose borders follow the photo's own edges,
while the star-shaped blobs and polygons of :func:`weakloc.datasets.synthetic.region_mask`
ignore the content. This module makes the other kind:

1. **Partition once per photo.** The photograph is partitioned by Felzenszwalb-Huttenlocher
   graph segmentation (scikit-image) at a working resolution (longer side ``work_side``).
   :func:`photo_partition` computes it once per photo and caches it in memory (and, when a
   ``cache_dir`` is given, on disk as ``<key>.npz``); the key is the SHA-256 of the photo's
   pixels and size plus the settings, so another photo or other settings never reuse it.
2. **Crop with the view.** :func:`view_labels` maps the partition through the same crop,
   rescale and flip that made the image's view of the photo (nearest neighbour on the
   labels), then splits the pieces the crop cut apart.
3. **Merge to an object.** :func:`object_region` grows a region from a random seed segment
   by adding, one at a time, the adjacent segment whose mean colour is closest to the
   region's, until the region reaches the target area; holes are filled. Segments are the
   photo's own, so the region's border runs along edges of the picture. A region that
   cannot reach the wanted area range gives ``None`` (the caller falls back to a shape).

Everything is deterministic given the random generator passed in.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from weakloc.errors import WeaklocError

#: Bump when a code change changes the partitions of unchanged settings.
OBJECT_RULES_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ObjectSettings:
    """How photos are partitioned into the segments that object regions are merged from.

    ``scale`` and ``work_side`` are ``dataset.synthetic.object_scale`` / ``object_work_side``
    (given by the caller); ``sigma`` and ``min_size`` are fixed rules of the generator.
    """

    scale: float             # Felzenszwalb scale at the working resolution (larger = larger segments)
    sigma: float = 0.8       # Gaussian pre-smoothing
    min_size: int = 40       # smallest segment, in working-resolution pixels
    work_side: int           # the photo's longer side while it is partitioned

    def key_payload(self) -> dict:
        return {"rules": OBJECT_RULES_VERSION, **asdict(self)}


_MEMO: dict[str, np.ndarray] = {}
_MEMO_LOCK = threading.Lock()


def photo_key(photo: Image.Image, settings: ObjectSettings) -> str:
    """16 hex digits of SHA-256 over the photo's RGB pixels, its size and ``settings``."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings.key_payload(), sort_keys=True).encode())
    digest.update(f"{photo.size[0]}x{photo.size[1]}".encode())
    digest.update(np.asarray(photo.convert("RGB")).tobytes())
    return digest.hexdigest()[:16]


def _partition_now(photo: Image.Image, settings: ObjectSettings) -> np.ndarray:
    from skimage.segmentation import felzenszwalb

    from weakloc.segmenters.partition import finalize_partition

    w, h = photo.size
    f = min(1.0, settings.work_side / max(w, h))
    small = photo.convert("RGB")
    if f < 1.0:
        small = small.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
    arr = np.asarray(small)
    labels = felzenszwalb(arr, scale=settings.scale, sigma=settings.sigma, min_size=settings.min_size,
                          channel_axis=-1)
    return finalize_partition(labels, settings.min_size)


def photo_partition(photo: Image.Image, settings: ObjectSettings,
                    cache_dir: str | Path | None = None) -> np.ndarray:
    """The photo's partition at the working resolution, ``(h, w) int32`` ids ``0..R-1`` (cached).

    ``(h, w)`` is the photo's size scaled so its longer side is at most ``work_side``.
    """
    key = photo_key(photo, settings)
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    path = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else None
    labels = None
    if path is not None and path.is_file():
        from weakloc.segmenters.partition import load_partition

        try:
            labels = load_partition(path)
        except WeaklocError:
            labels = None  # a damaged cache file is rebuilt
    if labels is None:
        labels = _partition_now(photo, settings)
        if path is not None:
            from weakloc.segmenters.partition import save_partition

            path.parent.mkdir(parents=True, exist_ok=True)
            save_partition(labels, path)
    with _MEMO_LOCK:
        _MEMO[key] = labels
    return labels


def view_labels(labels: np.ndarray, photo_size: tuple[int, int], box: tuple[float, float, float, float],
                out_size: tuple[int, int], flip: bool) -> np.ndarray:
    """The partition seen through a view of the photo: ``(out_h, out_w) int32``, 4-connected.

    ``photo_size`` is the photo's ``(width, height)``, ``box`` the view's crop
    ``(x0, y0, x1, y1)`` in photo pixels (as Pillow's ``resize(box=...)``), ``out_size`` the
    view's ``(width, height)``, ``flip`` whether the view was mirrored left-right.
    """
    from weakloc.segmenters.partition import connected_regions

    pw, ph = photo_size
    lh, lw = labels.shape
    x0, y0, x1, y1 = box
    ow, oh = out_size
    xs = x0 + (np.arange(ow) + 0.5) * (x1 - x0) / ow
    ys = y0 + (np.arange(oh) + 0.5) * (y1 - y0) / oh
    cols = np.clip((xs * lw / pw).astype(np.int64), 0, lw - 1)
    rows = np.clip((ys * lh / ph).astype(np.int64), 0, lh - 1)
    out = labels[rows[:, None], cols[None, :]]
    if flip:
        out = out[:, ::-1]
    return connected_regions(np.ascontiguousarray(out))


def object_region(labels: np.ndarray, rgb: np.ndarray, area_fraction: float, area_range: tuple[float, float],
                  rng: np.random.Generator, tries: int = 12) -> np.ndarray | None:
    """Merge adjacent segments of ``labels`` into one object-sized region, ``(H, W) bool`` or None.

    Starting from a random segment (drawn with probability proportional to its area, among
    segments smaller than the target), the segment adjacent to the region with the closest
    mean colour (in ``rgb``) joins it until the region holds ``area_fraction`` of the image;
    holes are filled. The result's area must lie in ``area_range`` (fractions); after
    ``tries`` seeds without success, None.
    """
    from scipy.ndimage import binary_fill_holes

    from weakloc.segmenters.partition import _shared_borders

    h, w = labels.shape
    total = h * w
    lo, hi = area_range
    target = area_fraction * total
    n = int(labels.max()) + 1
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    col = np.stack([np.bincount(flat, weights=rgb[..., c].ravel().astype(np.float64), minlength=n)
                    for c in range(3)], axis=1) / np.maximum(sizes, 1)[:, None]
    a, b, _ = _shared_borders(labels)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        neighbours[i].append(j)
        neighbours[j].append(i)
    candidates = np.flatnonzero(sizes <= max(target, lo * total))
    if candidates.size == 0:
        return None
    p = sizes[candidates] / sizes[candidates].sum()
    for _ in range(tries):
        seed = int(rng.choice(candidates, p=p))
        inside = np.zeros(n, dtype=bool)
        inside[seed] = True
        area = sizes[seed]
        mean = col[seed].copy()
        frontier = set(neighbours[seed])
        while area < target and frontier:
            front = np.fromiter(frontier, dtype=np.int64)
            dist = np.sum((col[front] - mean) ** 2, axis=1)
            # the closest colour; among equals, the smaller id (determinism)
            k = int(front[np.lexsort((front, dist))[0]])
            if area + sizes[k] > hi * total:
                frontier.discard(k)
                continue
            inside[k] = True
            mean = (mean * area + col[k] * sizes[k]) / (area + sizes[k])
            area += sizes[k]
            frontier.discard(k)
            frontier.update(j for j in neighbours[k] if not inside[j])
        mask = binary_fill_holes(inside[labels])
        frac = float(mask.mean())
        if lo <= frac <= hi and frac < 0.999:
            return mask
    return None
