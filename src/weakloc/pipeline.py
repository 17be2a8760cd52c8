"""The method on one image, as one object built once: :class:`Localizer` (``from weakloc import Localizer``).

A :class:`Localizer` holds the model, its checkpoint's operating point, the fusion method, the
segmenters and the typed refinement and decision settings. Each image goes through the
method's stages, each a method of the object and timed:

1. ``read``: the image as stored (a JPEG's own 8x8 grid) and its EXIF orientation
   (:func:`as_stored_rgb`);
2. ``detect``: signed error level -> WCBnet -> per-block maps (:mod:`weakloc.cams`) -> fusion
   (:mod:`weakloc.fusion`): the image score, the block maps and the coarse map, as displayed
   (:class:`Detection`);
3. ``segment``: the segmenters' partitions of the displayed image, **only when the image can
   get a mask** (:meth:`Localizer.needs_regions`): with ``refine.decision.mask_min_score =
   verdict``, an image whose score is at or below the operating
   point gets an empty mask whatever its regions are, so with ``localize.regions = masked``
   (the default) its segmenters do not run and are not even loaded until an image needs them;
4. ``refine``: Bayesian refinement and the decision (:mod:`weakloc.refinement`,
   :mod:`weakloc.decision`); an image that was not segmented is refined with the whole image
   as its one region (the region evidence then says only how much of the image stands out
   above its own background level), and its mask is empty as it would have been.

:meth:`Localizer.localize` does the stages one after the other (the reference);
:meth:`Localizer.localize_many` overlaps them across images (reading the next image and
segmenting the previous one in worker threads while the detector runs) and returns the same
results. ``weakloc localize`` (:mod:`weakloc.localize`, the folder writer), self-training,
the robustness step and the benchmarks all go through this object.

The **verdict** is ``manipulated`` when the image score is above the checkpoint's operating
point (:func:`weakloc.operating_point.operating_point`: the threshold chosen on the validation
split, or 0.5 for checkpoints that store none; ``threshold_source`` says which).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from weakloc.decision import gated
from weakloc.errors import WeaklocError
from weakloc.io import exif_orientation, orient_array, quantize_prob, read_rgb_stored, to_rgb

MANIPULATED, AUTHENTIC = "manipulated", "authentic"
#: The timed stages of one image, in order (``Localization.seconds``; ``weakloc localize`` adds ``write``).
STAGES = ("read", "detect", "segment", "refine")
SETTINGS_SOURCES = {"config": "the config given", "checkpoint": "the study that trained the checkpoint",
                    "defaults": "the schema's defaults (the checkpoint stores no study settings)"}


@dataclass(frozen=True)
class Detection:
    """What the detector says about one image (stage 2), in the displayed orientation.

    Attributes:
        score: image-level manipulation probability.
        maps: ``(B, H, W) float32`` per-block maps.
        coarse: ``(H, W) float32`` fused map.
    """

    score: float
    maps: np.ndarray
    coarse: np.ndarray


@dataclass(frozen=True)
class Localization:
    """One image's result.

    Attributes:
        prob: ``(H, W) float32`` map in [0, 1] at the image's exact size, in the 8-bit steps
            ``localize`` writes (equal to :func:`weakloc.io.read_prob` of ``<id>_prob.png``).
        mask: ``(H, W) bool``, exactly ``prob > 0.5``.
        score: image-level manipulation probability.
        threshold: the operating point the verdict uses.
        threshold_source: ``validation`` (chosen on the checkpoint's validation split) or
            ``default`` (0.5: the checkpoint stores no operating point).
        segmented: whether the segmenters ran on this image (:meth:`Localizer.needs_regions`).
        seconds: wall seconds of each stage (:data:`STAGES`) for this image; not part of equality.
    """

    prob: np.ndarray
    mask: np.ndarray
    score: float
    threshold: float
    threshold_source: str
    segmented: bool = False
    seconds: dict = field(default_factory=dict, compare=False)

    @property
    def manipulated(self) -> bool:
        """The verdict: ``score > threshold``."""
        return self.score > self.threshold

    @property
    def verdict(self) -> str:
        """``"manipulated"`` or ``"authentic"``."""
        return MANIPULATED if self.manipulated else AUTHENTIC


@dataclass
class _Image:
    """An image between stages: as stored, its orientation, as displayed, and what is known so far."""

    stored: np.ndarray
    orientation: int
    shown: np.ndarray
    sel: np.ndarray | None = None
    seconds: dict = field(default_factory=dict)


def as_stored_rgb(image) -> tuple[np.ndarray, int]:
    """``image`` (a path, a Pillow image or an ``(H, W, 3) uint8`` array) as ``(stored RGB, orientation)``.

    A path goes through :func:`weakloc.io.read_rgb_stored` (a JPEG keeps its stored pixels
    and reports its EXIF orientation), a Pillow image likewise; an array is taken as
    displayed (orientation 1). Anything else is a :class:`WeaklocError`.
    """
    if isinstance(image, (str, Path)):
        return read_rgb_stored(image)
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image, orient=False), dtype=np.uint8).copy(), exif_orientation(image)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise WeaklocError(f"Localizer: expected a file path or an (H, W, 3) uint8 RGB array, "
                           f"got an array of shape {arr.shape} and dtype {arr.dtype}")
    return arr, 1


def segment_image(rgb: np.ndarray, segmenters: Sequence[Callable], coarse: np.ndarray) -> list[np.ndarray]:
    """Each segmenter's ``(H, W) int32`` partition of ``rgb`` ``(H, W, 3) uint8`` (as displayed).

    A map-prompted segmenter (``needs_map``, e.g. ``sam_prompt``) is called as
    ``seg(rgb, coarse)``; a segmenter that works at a lower resolution does so by its own
    ``max_side`` setting (``segmenters.<name>.max_side``, ``--segment-max-side``).
    """
    return [seg(rgb, coarse) if getattr(seg, "needs_map", False) else seg(rgb) for seg in segmenters]


def resolve_settings(meta: dict, config: dict | None, overrides: dict | None = None,
                     checkpoint: str | Path = "checkpoint") -> tuple[dict, str]:
    """``(validated config, source)``: ``config`` when given (``source = "config"``), else the
    pipeline the checkpoint's study stored at training time (``"checkpoint"``), else the schema's
    defaults (``"defaults"``); then ``overrides`` (``{"section.key[.key]": value}``) are set and
    the whole is validated against the schema."""
    from weakloc.config import translate_renamed, validate_config

    if config is not None:
        chosen, source = copy.deepcopy(config), "config"
    elif meta.get("pipeline"):  # a checkpoint written before a key was renamed stores the old name
        chosen, source = translate_renamed(copy.deepcopy(meta["pipeline"])), "checkpoint"
    else:
        chosen, source = {}, "defaults"
    for dotted, value in (overrides or {}).items():
        *parents, key = dotted.split(".")
        node = chosen
        for name in parents:
            node = node.setdefault(name, {})
        node[key] = value
    where = f"{checkpoint} (stored pipeline settings)" if source == "checkpoint" else "config"
    return validate_config(chosen, where), source


def default_threads(segmenting: bool) -> int:
    """Torch CPU threads for ``weakloc localize``: ``OMP_NUM_THREADS`` if set, else the cores this
    process may use, less one for the segmenter thread when there is one (at least 1)."""
    from weakloc.runtime import available_threads

    return available_threads(1 if segmenting else 0)


class Localizer:
    """The method as a Python object: load once, call on many images.

    Args:
        checkpoint: a WCBnet checkpoint (``weakloc train``); None (the default): the released
            model that ships inside the package (:mod:`weakloc.release`, docs/model-card.md).
        config: configuration sections (``cams``, ``fusion``, ``segmenters``, ``refine``,
            ``localize``), as a dict in the YAML's shape; missing keys take the schema's
            defaults. None (the default): the settings of the study that trained the checkpoint,
            stored in it at training time (``meta["pipeline"]``); a checkpoint that stores none
            gets the schema's defaults. :attr:`settings_source` says which.
        overrides: ``{"section.key[.key]": value}`` set after the config is resolved (the CLI's
            ``--decision``, ``--segment-max-side``).
        segmenters: segmenter names (default: the config's ``segmenters.use``; ``[]`` = no refinement).
        fusion: fusion method (default: the first of ``fusion.methods``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        threads: torch CPU threads to set (None: leave torch's setting alone).

    ``localizer(image)`` takes a file path, a Pillow image or an ``(H, W, 3) uint8`` RGB array
    (taken as displayed) and returns a :class:`Localization`.
    """

    def __init__(self, checkpoint: str | Path | None = None, config: dict | None = None, *,
                 segmenters: Sequence[str] | None = None, fusion: str | None = None, device: str = "auto",
                 threads: int | None = None, overrides: dict | None = None) -> None:
        import torch

        from weakloc.runtime import resolve_device
        from weakloc.wcbnet import load_checkpoint

        if threads:
            torch.set_num_threads(int(threads))
        self.released = checkpoint is None
        if self.released:
            from weakloc.release import released_checkpoint

            checkpoint = released_checkpoint()
        device = str(resolve_device(device))  # "cpu" | "cuda"
        model, meta = load_checkpoint(checkpoint, map_location=device)
        settings, source = resolve_settings(meta, config, overrides, checkpoint)
        self._setup(model, meta, settings, source, Path(checkpoint), device, segmenters, fusion)

    @classmethod
    def from_model(cls, model, meta: dict, config: dict, *, segmenters: Sequence[str] | None = None,
                   fusion: str | None = None, checkpoint: str | Path | None = None) -> Localizer:
        """A localizer over a model already loaded (``weakloc.wcbnet.load_checkpoint``) with a
        validated ``config``: how the workflow's steps and the benchmarks build one."""
        self = cls.__new__(cls)
        self.released = False
        device = str(next(model.parameters()).device.type)
        self._setup(model, meta, config, "config", Path(checkpoint) if checkpoint else None, device, segmenters,
                    fusion)
        return self

    def _setup(self, model, meta, config, source, checkpoint, device, segmenters, fusion) -> None:
        from weakloc.fusion import FUSION_METHODS
        from weakloc.operating_point import operating_point
        from weakloc.refinement import RefineSettings
        from weakloc.sel import SelSettings

        self.model, self.meta, self.config, self.settings_source = model, meta, config, source
        self.checkpoint, self.device = checkpoint, device
        self.fusion = fusion or config["fusion"]["methods"][0]
        if self.fusion not in FUSION_METHODS:
            raise WeaklocError(f"unknown fusion {self.fusion!r} (choose from {', '.join(FUSION_METHODS)})")
        self.segmenter_names = list(config["segmenters"]["use"] if segmenters is None else segmenters)
        self.refine_settings = RefineSettings.from_section(config["refine"])
        self.sel_settings = SelSettings.from_section(meta["config"]["sel"])  # the detector's input, as trained
        self.threshold, self.threshold_source = operating_point(meta)
        self._segmenters: list | None = None  # built when an image first needs them
        self._segmenters_lock = threading.Lock()
        self._pools: dict[str, ThreadPoolExecutor] = {}

    # ------------------------------------------------------------------ settings

    def settings(self) -> dict:
        """What determines the maps: where the settings came from, fusion, segmenters and the config sections read."""
        cfg = self.config
        return {"source": self.settings_source, "fusion": self.fusion, "segmenters": self.segmenter_names,
                "cams": cfg["cams"], "fusion_settings": cfg["fusion"], "refine": cfg["refine"],
                "localize": cfg["localize"],
                "segmenter_settings": {n: cfg["segmenters"].get(n, {}) for n in self.segmenter_names}}

    @property
    def segmenters(self) -> list[Callable]:
        """The segmenters, built (SAM's weights loaded) on first use."""
        with self._segmenters_lock:
            if self._segmenters is None:
                from weakloc.segmenters import build_segmenter

                self._segmenters = [build_segmenter(n, self.config["segmenters"].get(n, {}))
                                    for n in self.segmenter_names]
            return self._segmenters

    def needs_regions(self, score: float) -> bool:
        """Whether an image with this score is segmented: there are segmenters and either
        ``localize.regions = all`` or the decision's ``mask_min_score``
        (:func:`weakloc.decision.gated`) lets the image have a mask at all."""
        if not self.segmenter_names:
            return False
        if self.config["localize"]["regions"] == "all":
            return True
        d = self.refine_settings.decision
        return not (d.rule == "calibrated" and gated(score, d, self.threshold))

    # ------------------------------------------------------------------ stages

    def read(self, image) -> _Image:
        """Stage 1: the image as stored and as displayed."""
        t = time.perf_counter()
        stored, orientation = as_stored_rgb(image)
        img = _Image(stored, orientation, orient_array(stored, orientation))
        img.seconds["read"] = time.perf_counter() - t
        return img

    def _with_sel(self, image) -> _Image:
        """Stage 1 plus the stored image's signed error level (the prefetch worker's share of stage 2).

        Not for an image the detector runs in tiles (longer side above ``cams.max_side``): its SEL
        is computed per tile as the tile runs (:func:`weakloc.cams.block_maps`), never whole."""
        from weakloc.cams import runs_tiled

        img = self.read(image)
        if not runs_tiled(*img.stored.shape[:2], self.config["cams"]["max_side"]):
            t = time.perf_counter()
            img.sel = self.sel_settings.of(img.stored)
            img.seconds["detect"] = time.perf_counter() - t
        return img

    def detect(self, stored: np.ndarray, orientation: int = 1, sel: np.ndarray | None = None) -> Detection:
        """Stage 2 on the image as stored: score, block maps and fused map, turned as displayed.

        ``sel``: the stored image's SEL when already computed (:func:`weakloc.cams.block_maps`).
        """
        from weakloc.cams import block_maps
        from weakloc.fusion import fuse_with_config

        cams = self.config["cams"]
        bm = block_maps(self.model, self.meta, stored, cams["method"], cams["max_side"], sel=sel)
        maps = bm.maps
        if orientation != 1:
            maps = np.ascontiguousarray(np.moveaxis(orient_array(np.moveaxis(maps, 0, -1), orientation), -1, 0))
        return Detection(float(bm.prob), maps, fuse_with_config(maps, self.fusion, bm.weights, self.config))

    def segment(self, shown: np.ndarray, coarse: np.ndarray) -> list[np.ndarray]:
        """Stage 3: each segmenter's partition of the displayed image (see :func:`segment_image`)."""
        return segment_image(shown, self.segmenters, coarse)

    def refine(self, detection: Detection, partitions: list[np.ndarray] | None) -> np.ndarray:
        """Stage 4: the map, in the 8-bit steps ``localize`` writes. With no segmenters, the fused
        map itself; with segmenters but ``partitions=None`` (an image :meth:`needs_regions`
        passed over), the refinement with the whole image as its one region, then the decision."""
        from weakloc.refinement import refine_with_config

        if not self.segmenter_names:
            return quantize_prob(detection.coarse)
        if partitions is None:
            partitions = [np.zeros(detection.coarse.shape, dtype=np.int32)]
        return quantize_prob(refine_with_config(detection.coarse, partitions, self.refine_settings,
                                                image_prob=detection.score, block_maps=detection.maps,
                                                image_threshold=self.threshold))

    def _result(self, prob: np.ndarray, score: float, segmented: bool, seconds: dict) -> Localization:
        return Localization(prob=prob, mask=prob > 0.5, score=score, threshold=self.threshold,
                            threshold_source=self.threshold_source, segmented=segmented,
                            seconds={s: seconds.get(s, 0.0) for s in STAGES})

    def _detected(self, img: _Image) -> Detection:
        t = time.perf_counter()
        det = self.detect(img.stored, img.orientation, img.sel)
        img.sel = None  # 48 bytes per pixel with four qualities: not kept past the detector
        img.seconds["detect"] = img.seconds.get("detect", 0.0) + time.perf_counter() - t
        return det

    def finish(self, shown: np.ndarray, detection: Detection, seconds: dict | None = None) -> Localization:
        """Stages 3 and 4 of a detected image (``shown``: the image as displayed): segmented only
        if :meth:`needs_regions`, then refined. ``seconds``: the earlier stages' times, to add to."""
        seconds = {} if seconds is None else seconds
        partitions = None
        if self.needs_regions(detection.score):
            t = time.perf_counter()
            partitions = self.segment(shown, detection.coarse)
            seconds["segment"] = time.perf_counter() - t
        t = time.perf_counter()
        prob = self.refine(detection, partitions)
        seconds["refine"] = time.perf_counter() - t
        return self._result(prob, detection.score, partitions is not None, seconds)

    def _finish(self, img: _Image, det: Detection) -> Localization:
        return self.finish(img.shown, det, img.seconds)

    # ------------------------------------------------------------------ whole images

    def localize(self, image) -> tuple[Localization, np.ndarray]:
        """``(result, the (H, W, 3) uint8 image as displayed)``: the stages one after the other."""
        img = self.read(image)
        return self._finish(img, self._detected(img)), img.shown

    def __call__(self, image) -> Localization:
        return self.localize(image)[0]

    def _pool(self, name: str) -> ThreadPoolExecutor:
        if name not in self._pools:
            self._pools[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"weakloc-{name}")
        return self._pools[name]

    def localize_many(
        self, images: Iterable
    ) -> Iterator[tuple[object, Localization | WeaklocError, np.ndarray | None]]:
        """``(image, result or the WeaklocError reading it raised, image as displayed or None)``
        for each of ``images``, in order, equal to :meth:`localize` on each.

        Three stages overlap: a worker thread reads the next image and computes its SEL, the
        detector runs on this one, and another worker segments and refines the previous one
        (if it needs regions). At most four images are in memory at a time, whatever the
        number of images (``images`` is consumed lazily).
        """
        it = iter(images)
        reader, finisher = self._pool("read"), self._pool("segment")

        def submit_next():
            for image in it:
                return image, reader.submit(self._with_sel, image)
            return None

        ahead = submit_next()
        pending: deque[tuple[object, Future | WeaklocError, _Image | None]] = deque()
        while ahead is not None or pending:
            if ahead is not None:
                image, future = ahead
                ahead = submit_next()
                try:
                    img = future.result()
                except WeaklocError as exc:
                    pending.append((image, exc, None))
                else:
                    det = self._detected(img)
                    pending.append((image, finisher.submit(self._finish, img, det), img))
                    del det  # the finisher holds it until the image is refined, no longer
            while pending and (ahead is None or len(pending) > 1 or _done(pending[0][1])):
                image, result, img = pending.popleft()
                if isinstance(result, Future):
                    yield image, result.result(), img.shown
                else:
                    yield image, result, None


def _done(item) -> bool:
    return not isinstance(item, Future) or item.done()
