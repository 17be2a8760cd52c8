"""PSPNet (``pspnet``): pyramid scene parsing, class map split into regions.

PSPNet is not in torchvision. The checkpoints people actually use are those published with
the PyTorch reimplementation hszhao/semseg (ADE20K 150 classes, PASCAL VOC 21, Cityscapes
19; ResNet-50 or -101). This module defines, in our own code, a network whose parameter
names and shapes match that format, so those files load strictly:

- ``layer0``: the "deep stem" of three 3x3 convolutions (3->64 stride 2, 64->64, 64->128),
  each followed by BatchNorm and ReLU, then a 3x3 max-pool of stride 2. Its Sequential
  indices are conv 0/3/6 and BatchNorm 1/4/7.
- ``layer1``..``layer4``: ResNet bottleneck stages (3-4-6-3 blocks for 50 layers, 3-4-23-3
  for 101; the stride on the 3x3 convolution). ``layer3`` and ``layer4`` are dilated
  instead of strided (every 3x3 convolution dilation 2 resp. 4, stride 1, and stride 1 in
  the shortcut), so the output stride is 8.
- ``ppm``: the pyramid pooling module, one branch per bin size 1, 2, 3, 6, each adaptive
  average pooling -> 1x1 convolution 2048->512 -> BatchNorm -> ReLU (indices 1 and 2),
  upsampled bilinearly (corners aligned) and concatenated with the input (4096 channels).
- ``cls``: 3x3 convolution 4096->512, BatchNorm, ReLU, dropout, 1x1 convolution to the
  classes (indices 0, 1, 4).

A checkpoint is a dict whose ``state_dict`` has these names prefixed with ``module.``
(``DataParallel``); the training-only auxiliary head (``aux.*``) is ignored. Inputs are RGB
scaled to 0..255, minus the ImageNet mean and divided by its standard deviation (both
times 255), as in that codebase. The image is padded at the bottom and right (with the
mean colour, i.e. zeros after normalising) to a size of ``8k + 1``, so the stride-8
feature grid lines up with corner-aligned upsampling, and the logits are cropped back.
Published evaluation also rescales to a base size and averages sliding crops and
flips; we run once at native resolution [ours].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from weakloc.errors import WeaklocError
from weakloc.segmenters.checkpoints import load_weights, read_state_dict
from weakloc.segmenters.semantic import IMAGENET_MEAN, IMAGENET_STD, ClassMapSegmenter

KEY = "segmenters.pspnet.checkpoint"
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
PYRAMID_BINS = (1, 2, 3, 6)


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _stage(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """A bottleneck stage; with ``dilation > 1`` every 3x3 convolution is dilated and nothing strides."""
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [Bottleneck(inplanes, planes, stride=stride, downsample=downsample, dilation=dilation)]
    layers += [Bottleneck(out, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class PyramidPooling(nn.Module):
    """Pyramid pooling: ``(N, C, h, w)`` -> ``(N, 2C, h, w)`` (input plus one C/4 branch per bin)."""

    def __init__(self, in_dim: int, bins: tuple[int, ...] = PYRAMID_BINS):
        super().__init__()
        reduced = in_dim // len(bins)
        self.features = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_dim, reduced, 1, bias=False),
                          nn.BatchNorm2d(reduced), nn.ReLU(inplace=True))
            for b in bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        branches = [F.interpolate(f(x), size=size, mode="bilinear", align_corners=True) for f in self.features]
        return torch.cat([x, *branches], dim=1)


class PSPNet(nn.Module):
    """PSPNet with a dilated ResNet-50/101 (deep stem), in the published checkpoint layout.

    ``forward``: ``(N, 3, H, W)`` float normalised input -> ``(N, classes, H, W)`` logits.
    """

    def __init__(self, layers: int, classes: int, dropout: float = 0.1):
        super().__init__()
        blocks = STAGE_BLOCKS[layers]
        self.layer0 = nn.Sequential(*_conv_bn_relu(3, 64, 2), *_conv_bn_relu(64, 64, 1), *_conv_bn_relu(64, 128, 1),
                                    nn.MaxPool2d(3, stride=2, padding=1))
        self.layer1 = _stage(128, 64, blocks[0], stride=1, dilation=1)
        self.layer2 = _stage(256, 128, blocks[1], stride=2, dilation=1)
        self.layer3 = _stage(512, 256, blocks[2], stride=1, dilation=2)
        self.layer4 = _stage(1024, 512, blocks[3], stride=1, dilation=4)
        self.ppm = PyramidPooling(2048)
        self.cls = nn.Sequential(nn.Conv2d(4096, 512, 3, padding=1, bias=False), nn.BatchNorm2d(512),
                                 nn.ReLU(inplace=True), nn.Dropout2d(dropout), nn.Conv2d(512, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        f = self.layer4(self.layer3(self.layer2(self.layer1(self.layer0(x)))))
        logits = self.cls(self.ppm(f))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)


def build_pspnet(checkpoint: str | None, layers: int, num_classes: int) -> PSPNet:
    """A PSPNet loaded from ``checkpoint`` (published hszhao/semseg format), in eval mode.

    Errors name ``segmenters.pspnet.checkpoint`` (missing file, not a checkpoint, or one
    that does not fit ``layers`` / ``num_classes``).
    """
    if checkpoint is None:
        raise WeaklocError(f"{KEY} is null: PSPNet has no weights that can be fetched automatically; download a "
                           f"published PSPNet checkpoint (hszhao/semseg, e.g. ADE20K pspnet50 train_epoch_100.pth) "
                           f"and set {KEY} to its path (and segmenters.pspnet.layers / num_classes to match)")
    model = PSPNet(int(layers), int(num_classes))
    state = read_state_dict(checkpoint, KEY)
    load_weights(model, state, checkpoint, KEY, f"PSPNet-{layers} with {num_classes} classes",
                 ignore_prefixes=("aux.",))
    return model.eval()


class PSPNetSegmenter(ClassMapSegmenter):
    """PSPNet class map, split into connected regions (the ``segmenters.pspnet`` settings).

    Call with ``(H, W, 3) uint8`` RGB; returns an ``(H, W) int32`` partition ``0..R-1``.
    """

    def __init__(self, checkpoint: str | None, layers: int, num_classes: int, min_region: int, device: str,
                 max_side: int | None):
        super().__init__(device, "segmenters.pspnet.device", min_region, max_side)
        self.model = build_pspnet(checkpoint, layers, num_classes).to(self.device)

    def logits(self, rgb: np.ndarray) -> torch.Tensor:
        h, w = rgb.shape[:2]
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float()
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255.0
        x = (x - mean) / std
        ph, pw = 8 * -(-(h - 1) // 8) + 1, 8 * -(-(w - 1) // 8) + 1
        x = F.pad(x, (0, pw - w, 0, ph - h)).unsqueeze(0).to(self.device)
        return self.model(x)[:, :, :h, :w]
