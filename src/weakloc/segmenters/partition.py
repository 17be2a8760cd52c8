"""Partitions: the common output of every segmenter, and the rules that make one.

A partition is an ``(H, W) int32`` label map with ids ``0..R-1``: every pixel belongs to
exactly one region. Every segmenter ends with :func:`finalize_partition`, so all of them
obey the same three rules [ours]:

1. every region is 4-connected (a label that occurs in several pieces becomes several
   regions), so a region is a spatially coherent piece of evidence for the refinement;
2. regions smaller than ``min_region`` pixels merge into the neighbour they share the
   longest border with (ties: the smaller id), repeated until none is left or the image
   is one region;
3. ids are made contiguous, ``0..R-1``.

Segment Anything returns overlapping masks rather than a partition;
:func:`masks_to_partition` resolves them (the rule is in its docstring).

On disk a partition is ``np.savez_compressed(path, labels=...)``; read it back with
:func:`load_partition`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from skimage.measure import label as connected_label

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` if it is an ``(H, W, 3) uint8`` image, else raise :class:`WeaklocError`."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise WeaklocError(f"a segmenter needs an (H, W, 3) uint8 RGB image, got shape {rgb.shape} {rgb.dtype}")
    return rgb


def relabel_contiguous(labels: np.ndarray) -> np.ndarray:
    """Map the distinct values of ``labels`` (any integer ``(H, W)``) to ``0..R-1``.

    The order of ids follows the order of the original values. Returns ``(H, W) int32``.
    """
    labels = np.asarray(labels)
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def connected_regions(labels: np.ndarray) -> np.ndarray:
    """Split every label of ``(H, W)`` integer ``labels`` into its 4-connected pieces.

    Returns ``(H, W) int32`` with ids ``0..R-1`` numbered in raster order of first pixel.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int32)
    # skimage treats `background` as unlabelled; shift so no real value equals it.
    shifted = labels.astype(np.int64) - int(labels.min()) + 1
    return (connected_label(shifted, background=0, connectivity=1) - 1).astype(np.int32)


def _shared_borders(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 4-neighbour border lengths between distinct regions: (a, b, count) with a < b."""
    pairs = []
    for x, y in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        differ = x != y
        a, b = x[differ], y[differ]
        pairs.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    both = np.concatenate(pairs, axis=0)
    if both.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    uniq, counts = np.unique(both, axis=0, return_counts=True)
    return uniq[:, 0].astype(np.int64), uniq[:, 1].astype(np.int64), counts


def _find_root(parent: np.ndarray, i: int) -> int:
    """Union-find root of ``i`` in ``parent`` (``(n,)`` int), halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_small_regions(labels: np.ndarray, min_region: int) -> np.ndarray:
    """Merge every region smaller than ``min_region`` pixels into a neighbour.

    ``labels``: ``(H, W)`` integer partition with ids ``0..R-1``. A small region joins the
    neighbour it shares the longest border with (ties: the smaller id); this repeats until
    every region has at least ``min_region`` pixels or only one region is left. Returns
    ``(H, W) int32`` with ids ``0..R'-1``.
    """
    labels = relabel_contiguous(labels)
    if min_region <= 1:
        return labels
    while True:
        n = int(labels.max()) + 1 if labels.size else 0
        if n <= 1:
            return labels
        sizes = np.bincount(labels.ravel(), minlength=n)
        small = np.flatnonzero(sizes < min_region)
        if small.size == 0:
            return labels
        a, b, count = _shared_borders(labels)
        # Each border seen from both sides; for each small region choose its best neighbour.
        src = np.concatenate([a, b])
        dst = np.concatenate([b, a])
        cnt = np.concatenate([count, count])
        keep = sizes[src] < min_region
        src, dst, cnt = src[keep], dst[keep], cnt[keep]
        # Sort by source, then longest border, then smaller neighbour id: first row wins.
        order = np.lexsort((dst, -cnt, src))
        src, dst = src[order], dst[order]
        first = np.ones(src.size, dtype=bool)
        first[1:] = src[1:] != src[:-1]
        parent = np.arange(n)
        for s, d in zip(src[first].tolist(), dst[first].tolist(), strict=True):
            rs, rd = _find_root(parent, s), _find_root(parent, d)
            if rs != rd:
                parent[max(rs, rd)] = min(rs, rd)
        roots = np.array([_find_root(parent, i) for i in range(n)])
        merged = relabel_contiguous(roots[labels])
        if int(merged.max()) + 1 == n:  # nothing could merge (cannot happen with n > 1)
            return merged
        labels = merged


def finalize_partition(labels: np.ndarray, min_region: int = 0) -> np.ndarray:
    """Apply the partition rules of this module to any ``(H, W)`` integer label map.

    Returns ``(H, W) int32``: 4-connected regions, none smaller than ``min_region`` pixels
    (unless the whole image is smaller), ids ``0..R-1``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise WeaklocError(f"a partition must be a 2-D label map, got shape {labels.shape}")
    return merge_small_regions(connected_regions(labels), min_region)


def masks_to_partition(masks: Sequence[np.ndarray], shape: tuple[int, int], min_region: int = 0) -> np.ndarray:
    """Resolve overlapping binary masks into a partition.

    ``masks``: sequence of ``(H, W) bool`` masks (Segment Anything's automatic masks, in
    any order); ``shape``: ``(H, W)``. The rule [ours]: masks are painted from the largest
    area to the smallest (ties keep the given order), each over the ones before it, so a
    small object inside a large one keeps its own region instead of being swallowed.
    Pixels no mask claims are grouped into their own connected regions. Then
    :func:`finalize_partition` splits every region into connected pieces and merges pieces
    smaller than ``min_region`` into their neighbours. Returns ``(H, W) int32``, ``0..R-1``.
    """
    shape = tuple(int(s) for s in shape)
    canvas = np.full(shape, -1, dtype=np.int64)
    areas = []
    for i, m in enumerate(masks):
        m = np.asarray(m, dtype=bool)
        if m.shape != shape:
            raise WeaklocError(f"mask {i} has shape {m.shape}, expected {shape}")
        areas.append(int(m.sum()))
    order = sorted(range(len(areas)), key=lambda i: (-areas[i], i))
    for rank, i in enumerate(order):
        canvas[np.asarray(masks[i], dtype=bool)] = rank
    # Unclaimed pixels (-1) form their own label; connected_regions splits them into pieces.
    return finalize_partition(canvas, min_region)


def downscaled(rgb: np.ndarray, max_side: int | None) -> np.ndarray | None:
    """``rgb`` ``(H, W, 3) uint8`` area-averaged down to ``max_side`` pixels on its longer side,
    or None when it is not larger than that (or ``max_side`` is None)."""
    from PIL import Image

    H, W = rgb.shape[:2]
    if max_side is None or max(H, W) <= int(max_side):
        return None
    s = int(max_side) / max(H, W)
    h, w = max(1, round(H * s)), max(1, round(W * s))
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))


def segment_at_most(rgb: np.ndarray, max_side: int | None, segment) -> np.ndarray:
    """``segment(image) -> (h, w) partition`` run on ``rgb`` :func:`downscaled` to ``max_side``
    when it is larger, its labels mapped back to ``rgb``'s size (:func:`upscale_labels`)."""
    small = downscaled(rgb, max_side)
    return segment(rgb) if small is None else upscale_labels(segment(small), rgb.shape[:2])


def upscale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A partition of a down-scaled image mapped back to ``shape`` ``(H, W)`` by nearest neighbour.

    Pixel ``(y, x)`` takes the label of small pixel ``(y * h // H, x * w // W)``. Each small
    pixel maps to a non-empty block of rows and columns, in order, so every region stays
    4-connected, every id ``0..R-1`` stays present and every pixel is in exactly one region.
    """
    H, W = (int(v) for v in shape)
    h, w = labels.shape
    rows = np.minimum((np.arange(H) * h) // H, h - 1)
    cols = np.minimum((np.arange(W) * w) // W, w - 1)
    return np.ascontiguousarray(labels[np.ix_(rows, cols)])


def check_partition(labels: np.ndarray, shape: tuple[int, int] | None = None, source: str = "partition") -> np.ndarray:
    """Check that ``labels`` is an ``(H, W) int32`` partition with ids ``0..R-1``; return it.

    Raises :class:`WeaklocError` naming ``source`` when it is not.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise WeaklocError(f"{source}: labels must be 2-D, got shape {labels.shape}")
    if shape is not None and labels.shape != tuple(shape):
        raise WeaklocError(f"{source}: labels have shape {labels.shape}, the image is {tuple(shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise WeaklocError(f"{source}: labels must be integers, got {labels.dtype}")
    if labels.size:
        present = np.unique(labels)
        if present[0] != 0 or present[-1] != present.size - 1:
            raise WeaklocError(f"{source}: region ids must be contiguous 0..R-1, got {present.size} ids "
                               f"from {present[0]} to {present[-1]}")
    return labels.astype(np.int32, copy=False)


def save_partition(labels: np.ndarray, path: str | Path) -> None:
    """Write an ``(H, W) int32`` partition as ``np.savez_compressed(labels=...)`` atomically."""
    labels = check_partition(labels, source=str(path))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=labels)


def load_partition(path: str | Path) -> np.ndarray:
    """Read a partition written by :func:`save_partition` as ``(H, W) int32``, ids ``0..R-1``.

    Raises :class:`WeaklocError` naming the file when it is missing, unreadable, or not a
    valid partition.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "labels" not in data.files:
                raise WeaklocError(f"{path}: no 'labels' array in the partition file")
            labels = data["labels"]
    except FileNotFoundError:
        raise WeaklocError(f"{path}: partition not found (run `weakloc segment` first)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WeaklocError(f"{path}: unreadable partition ({exc})") from None
    return check_partition(labels, source=str(path))
