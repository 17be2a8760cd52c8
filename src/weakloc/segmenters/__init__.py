"""The segmenters (METHOD.md step 5): each turns an image into a partition.

A segmenter is a callable ``rgb (H, W, 3) uint8 -> labels (H, W) int32`` with ids
``0..R-1``, every pixel in exactly one region (see :mod:`weakloc.segmenters.partition`).

- ``slic``, ``felzenszwalb``: scikit-image superpixels (offline; the default).
- ``sam``: Segment Anything automatic masks (MobileSAM by default) resolved into a partition.
- ``sam_prompt``: SAM prompted with the coarse map's peaks (:mod:`weakloc.segmenters.prompted`);
  it needs the map, so it is called as ``seg(rgb, coarse)`` (``MAP_PROMPTED``).
- ``deeplab``: torchvision DeepLabV3 class map, split into connected regions.
- ``pspnet``: PSPNet (published hszhao/semseg checkpoints) class map, split likewise (what the two
  semantic segmenters share is :class:`weakloc.segmenters.semantic.ClassMapSegmenter`).

:func:`build_segmenter` builds one from its config section (``segmenters.<name>``), loading
any weights once. :func:`settings_key` is the short hash of the settings that change its
output; the workflow caches partitions under ``results/{d}/segments/{name}/{key}/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from weakloc.errors import WeaklocError
from weakloc.segmenters.partition import (  # noqa: F401  (re-exported)
    finalize_partition,
    load_partition,
    masks_to_partition,
    save_partition,
)

#: Bump when a change to the code changes the partitions of unchanged settings, so that
#: cached partitions made by the old code are not reused.
PARTITION_RULES_VERSION = 1


class Segmenter(Protocol):
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB -> ``(H, W) int32`` partition with ids ``0..R-1``."""


def _slic(s: dict) -> Segmenter:
    from weakloc.segmenters.superpixels import SlicSegmenter

    return SlicSegmenter(s["n_segments"], s["compactness"], s["sigma"], s["max_side"])


def _felzenszwalb(s: dict) -> Segmenter:
    from weakloc.segmenters.superpixels import FelzenszwalbSegmenter

    return FelzenszwalbSegmenter(s["scale"], s["sigma"], s["min_size"], s["max_side"])


def _sam(s: dict) -> Segmenter:
    from weakloc.segmenters.sam import SamSegmenter

    return SamSegmenter(s["model_type"], s["checkpoint"], s["points_per_side"], s["pred_iou_thresh"],
                        s["stability_score_thresh"], s["min_region"], s["device"], s["encoder_size"], s["max_side"])


def _sam_prompt(s: dict) -> Segmenter:
    from weakloc.segmenters.prompted import PromptedSamSegmenter

    return PromptedSamSegmenter(s["model_type"], s["checkpoint"], s["prompts"], s["n_prompts"], s["smooth"],
                                s["min_region"], s["device"], s["encoder_size"])


def _deeplab(s: dict) -> Segmenter:
    from weakloc.segmenters.deeplab import DeepLabSegmenter

    return DeepLabSegmenter(s["arch"], s["checkpoint"], s["num_classes"], s["min_region"], s["device"], s["max_side"])


def _pspnet(s: dict) -> Segmenter:
    from weakloc.segmenters.pspnet import PSPNetSegmenter

    return PSPNetSegmenter(s["checkpoint"], s["layers"], s["num_classes"], s["min_region"], s["device"], s["max_side"])


#: name -> builder(settings with defaults filled) -> Segmenter
SEGMENTERS: dict[str, Callable[[dict], Segmenter]] = {
    "slic": _slic,
    "felzenszwalb": _felzenszwalb,
    "sam": _sam,
    "sam_prompt": _sam_prompt,
    "deeplab": _deeplab,
    "pspnet": _pspnet,
}

#: Segmenters that need the coarse map (called as ``seg(rgb, coarse)``; ``needs_map`` is True).
MAP_PROMPTED = frozenset({"sam_prompt"})
#: Segmenters whose partitions ``weakloc segment`` caches (all but the map-prompted ones), in registry order.
CACHED_SEGMENTERS = tuple(name for name in SEGMENTERS if name not in MAP_PROMPTED)

#: The settings that change a segmenter's partitions (``device`` does not, by design).
RESULT_SETTINGS: dict[str, tuple[str, ...]] = {
    "slic": ("n_segments", "compactness", "sigma", "max_side"),
    "felzenszwalb": ("scale", "sigma", "min_size", "max_side"),
    "sam": ("model_type", "checkpoint", "encoder_size", "points_per_side", "pred_iou_thresh", "stability_score_thresh",
            "min_region", "max_side"),
    "sam_prompt": ("model_type", "checkpoint", "encoder_size", "prompts", "n_prompts", "smooth", "min_region"),
    "deeplab": ("arch", "checkpoint", "num_classes", "min_region", "max_side"),
    "pspnet": ("checkpoint", "layers", "num_classes", "min_region", "max_side"),
}

#: The segmenters that can segment an image at a lower resolution (``segmenters.<name>.max_side``).
DOWNSCALED_SEGMENTERS = tuple(name for name, keys in RESULT_SETTINGS.items() if "max_side" in keys)


def check_name(name: str) -> None:
    if name not in SEGMENTERS:
        raise WeaklocError(f"unknown segmenter {name!r} (choose from {', '.join(SEGMENTERS)})")


def complete_settings(name: str, settings: dict | None) -> dict[str, Any]:
    """``settings`` checked against the schema's ``segmenters.<name>`` with its defaults filled in;
    an unknown key or a value the schema does not allow is a WeaklocError naming
    ``segmenters.<name>.<key>``."""
    from weakloc.config import validate_section

    check_name(name)
    return validate_section(f"segmenters.{name}", settings or {})


def build_segmenter(name: str, settings: dict | None = None) -> Segmenter:
    """Build segmenter ``name`` from its config section ``segmenters.<name>`` (keys it lacks: the
    schema's defaults; the segmenter classes have none of their own).

    Weights (if any) load here, once; the result maps ``(H, W, 3) uint8`` RGB to an
    ``(H, W) int32`` partition.
    """
    return SEGMENTERS[name](complete_settings(name, settings))


def settings_key(name: str, settings: dict | None = None) -> str:
    """A 10-hex-digit hash of what determines ``name``'s partitions: the settings in
    :data:`RESULT_SETTINGS` (defaults filled) and :data:`PARTITION_RULES_VERSION`.

    A checkpoint enters by its path as written in the config, not its content.
    """
    full = complete_settings(name, settings)

    def canonical(v: Any) -> Any:  # 10 and 10.0 are the same setting
        return int(v) if isinstance(v, float) and v.is_integer() else v

    payload = {"segmenter": name, "rules": PARTITION_RULES_VERSION,
               "settings": {k: canonical(full[k]) for k in RESULT_SETTINGS[name]}}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def fetch_mobile_sam(*args, **kwargs):
    """See :func:`weakloc.segmenters.sam.fetch_mobile_sam` (imported lazily: it needs no torch model)."""
    from weakloc.segmenters.sam import fetch_mobile_sam as fetch

    return fetch(*args, **kwargs)
