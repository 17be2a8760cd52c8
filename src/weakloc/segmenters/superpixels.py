"""scikit-image superpixels: ``slic`` and ``felzenszwalb``, the offline segmenters.

They need no weights, so they are the default regions of the refinement. The paper used
pre-trained semantic segmenters (DeepLab, SAM, PSPNet); superpixels are [ours], an offline
stand-in whose region size is set directly.

Large images [ours]: an image whose longer side exceeds ``max_side`` (2,048 px by default) is
segmented at that size (area-averaged down-scale) and the partition mapped back by nearest
neighbour (:func:`weakloc.segmenters.partition.upscale_labels`): scikit-image works in float64
Lab colour, several copies of the image at 24 bytes per pixel, which at 40 megapixels took
gigabytes and a minute. ``min_size`` / ``min_region`` then count pixels of the down-scaled image.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import felzenszwalb, slic

from weakloc.segmenters.partition import check_rgb, finalize_partition, segment_at_most


class _Superpixels:
    """A scikit-image superpixel method: call with ``(H, W, 3) uint8`` RGB, get an ``(H, W) int32``
    partition ``0..R-1`` (regions under ``min_region`` pixels merged into a neighbour)."""

    min_region = 0
    max_side: int | None

    def labels(self, rgb: np.ndarray) -> np.ndarray:
        """The method's ``(H, W)`` integer labels of a checked image."""
        raise NotImplementedError

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return segment_at_most(check_rgb(rgb), self.max_side,
                               lambda im: finalize_partition(self.labels(im), self.min_region))


class SlicSegmenter(_Superpixels):
    """SLIC superpixels (k-means in Lab colour + position), about ``n_segments`` regions
    (the ``segmenters.slic`` settings)."""

    def __init__(self, n_segments: int, compactness: float, sigma: float, max_side: int | None):
        self.n_segments, self.compactness, self.sigma = int(n_segments), float(compactness), float(sigma)
        self.max_side = max_side

    def labels(self, rgb: np.ndarray) -> np.ndarray:
        return slic(rgb, n_segments=self.n_segments, compactness=self.compactness, sigma=self.sigma,
                    start_label=0, enforce_connectivity=True, channel_axis=-1)


class FelzenszwalbSegmenter(_Superpixels):
    """Felzenszwalb-Huttenlocher graph segmentation (the ``segmenters.felzenszwalb`` settings):
    ``scale`` larger gives larger regions, none smaller than ``min_size`` pixels."""

    def __init__(self, scale: float, sigma: float, min_size: int, max_side: int | None):
        self.scale, self.sigma, self.min_size = float(scale), float(sigma), int(min_size)
        self.min_region = self.min_size
        self.max_side = max_side

    def labels(self, rgb: np.ndarray) -> np.ndarray:
        return felzenszwalb(rgb, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1)
