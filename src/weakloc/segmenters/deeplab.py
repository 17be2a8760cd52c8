"""DeepLabV3 (``deeplab``): torchvision's semantic segmenter, class map split into regions.

The network is torchvision's ``deeplabv3_<arch>`` (``resnet50``, ``resnet101`` or
``mobilenet_v3_large``). Its per-pixel argmax class map becomes a partition: every
4-connected patch of one class is a region, and patches smaller than ``min_region`` pixels
merge into a neighbour (:func:`weakloc.segmenters.partition.finalize_partition`) [ours:
the paper does not say how it turned DeepLab's output into regions].

Weights: ``segmenters.deeplab.checkpoint`` names a state-dict file (``.pth``; a
``{"state_dict": ...}`` wrapper and ``module.`` prefixes are accepted, the auxiliary
classifier's parameters are ignored). When it is null, torchvision's published
COCO-with-VOC-labels weights (21 classes) are downloaded from download.pytorch.org into
torch's hub cache on first use; that needs internet, so where there is none the error says
which file to fetch and which key to set.

The image is fed at its own resolution, normalised with the ImageNet mean and standard
deviation (torchvision's published transform first resizes to 520 px; we do not, so that
the regions keep the image's detail and cost stays proportional to its size) [ours].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from weakloc.errors import WeaklocError
from weakloc.segmenters.checkpoints import load_weights, read_state_dict
from weakloc.segmenters.semantic import IMAGENET_MEAN, IMAGENET_STD, ClassMapSegmenter

KEY = "segmenters.deeplab.checkpoint"


def _builders():
    from torchvision.models import segmentation as seg

    return {
        "resnet50": (seg.deeplabv3_resnet50, seg.DeepLabV3_ResNet50_Weights.DEFAULT),
        "resnet101": (seg.deeplabv3_resnet101, seg.DeepLabV3_ResNet101_Weights.DEFAULT),
        "mobilenet_v3_large": (seg.deeplabv3_mobilenet_v3_large, seg.DeepLabV3_MobileNet_V3_Large_Weights.DEFAULT),
    }


def published_weights_url(arch: str) -> str:
    """The URL of torchvision's published DeepLabV3 weights for ``arch``."""
    return _builders()[arch][1].url


def build_deeplab(arch: str, num_classes: int, checkpoint: str | None) -> torch.nn.Module:
    """A torchvision DeepLabV3 of ``arch`` with ``num_classes`` outputs, loaded, in eval mode.

    ``checkpoint``: a state-dict file, or None for torchvision's published 21-class weights
    (downloaded once into torch's hub cache; needs internet). Errors name
    ``segmenters.deeplab.checkpoint``.
    """
    builders = _builders()
    if arch not in builders:
        raise WeaklocError(f"segmenters.deeplab.arch: unknown {arch!r} (choose {', '.join(builders)})")
    builder, weights = builders[arch]
    model = builder(weights=None, weights_backbone=None, num_classes=int(num_classes), aux_loss=False)
    if checkpoint is not None:
        state = read_state_dict(checkpoint, KEY)
        source = checkpoint
    else:
        if int(num_classes) != 21:
            raise WeaklocError(f"{KEY} is null, so torchvision's published 21-class weights are used, but "
                               f"segmenters.deeplab.num_classes is {num_classes}: set the checkpoint or use 21")
        try:
            state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=True,
                                                       check_hash=True, weights_only=True)
        except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise WeaklocError(f"{KEY} is null and torchvision's DeepLabV3-{arch} weights could not be downloaded "
                               f"({reason}): fetch {weights.url} where there is internet and set {KEY} "
                               f"to the file's path") from None
        source = weights.url
    load_weights(model, state, source, KEY, f"DeepLabV3-{arch} with {num_classes} classes",
                 ignore_prefixes=("aux_classifier.",))
    return model.eval()


class DeepLabSegmenter(ClassMapSegmenter):
    """DeepLabV3 class map, split into connected regions (the ``segmenters.deeplab`` settings).

    Call with ``(H, W, 3) uint8`` RGB; returns an ``(H, W) int32`` partition ``0..R-1``.
    """

    def __init__(self, arch: str, checkpoint: str | None, num_classes: int, min_region: int, device: str,
                 max_side: int | None):
        super().__init__(device, "segmenters.deeplab.device", min_region, max_side)
        self.model = build_deeplab(arch, num_classes, checkpoint).to(self.device)

    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        x = ((x - mean) / std).unsqueeze(0).to(self.device)
        logits = self.model(x)["out"]
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits
