"""scikit-image superpixels: ``slic`` and ``felzenszwalb``, the offline segmenters.

They need no weights, so they are the default regions of the refinement. The paper used
pre-trained semantic segmenters (DeepLab, SAM, PSPNet); superpixels are [ours], an offline
stand-in whose region size is set directly.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import felzenszwalb, slic

from weakloc.segmenters.partition import check_rgb, finalize_partition


class SlicSegmenter:
    """SLIC superpixels (k-means in Lab colour + position).

    Call with ``(H, W, 3) uint8`` RGB; returns an ``(H, W) int32`` partition ``0..R-1``
    with about ``n_segments`` regions.
    """

    def __init__(self, n_segments: int = 100, compactness: float = 10.0, sigma: float = 1.0):
        self.n_segments = int(n_segments)
        self.compactness = float(compactness)
        self.sigma = float(sigma)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = check_rgb(rgb)
        labels = slic(rgb, n_segments=self.n_segments, compactness=self.compactness, sigma=self.sigma,
                      start_label=0, enforce_connectivity=True, channel_axis=-1)
        return finalize_partition(labels, 0)


class FelzenszwalbSegmenter:
    """Felzenszwalb-Huttenlocher graph segmentation.

    Call with ``(H, W, 3) uint8`` RGB; returns an ``(H, W) int32`` partition ``0..R-1``;
    ``scale`` larger gives larger regions, none smaller than ``min_size`` pixels.
    """

    def __init__(self, scale: float = 200.0, sigma: float = 0.8, min_size: int = 50):
        self.scale = float(scale)
        self.sigma = float(sigma)
        self.min_size = int(min_size)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = check_rgb(rgb)
        labels = felzenszwalb(rgb, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1)
        return finalize_partition(labels, self.min_size)
