"""What the semantic segmenters (``deeplab``, ``pspnet``) share: a class map split into regions.

A semantic segmenter gives every pixel a class; its partition is the argmax class map with
every 4-connected patch of one class a region and patches under ``min_region`` pixels merged
into a neighbour (:func:`weakloc.segmenters.partition.finalize_partition`) [ours: the paper
does not say how it turned the segmenters' output into regions].
"""

from __future__ import annotations

import numpy as np
import torch

from weakloc.runtime import resolve_device
from weakloc.segmenters.partition import check_rgb, finalize_partition, segment_at_most

#: The ImageNet normalisation both networks were trained with (RGB in 0..1).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ClassMapSegmenter:
    """Base of a semantic segmenter; call with ``(H, W, 3) uint8`` RGB, get an ``(H, W) int32``
    partition ``0..R-1``.

    A subclass calls ``__init__`` first (it resolves ``device``, naming ``device_key`` in its
    error; ``max_side``: see :meth:`__call__`), then sets ``self.model`` on ``self.device`` and
    implements :meth:`logits`.
    """

    def __init__(self, device: str, device_key: str, min_region: int, max_side: int | None):
        self.device = resolve_device(device, device_key)
        self.min_region = int(min_region)
        self.max_side = max_side

    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        """``(1, C, H, W)`` class logits of a checked ``(H, W, 3) uint8`` image (in inference mode)."""
        raise NotImplementedError

    def class_map(self, rgb: np.ndarray) -> np.ndarray:
        """Per-pixel argmax class of ``(H, W, 3) uint8`` RGB: ``(H, W) int64`` in ``0..C-1``."""
        rgb = check_rgb(rgb)
        with torch.inference_mode():
            return self.logits(rgb).argmax(1)[0].cpu().numpy()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The partition, classified at most at ``max_side`` px on the longer side (labels mapped back)."""
        return segment_at_most(check_rgb(rgb), self.max_side,
                               lambda image: finalize_partition(self.class_map(image), self.min_region))
