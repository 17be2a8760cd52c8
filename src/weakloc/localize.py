"""``weakloc localize`` and :class:`Localizer`: the whole method on a user's images, end to end.

For each image: signed error level -> WCBnet -> per-block maps (:mod:`weakloc.cams`) ->
fusion (:mod:`weakloc.fusion`) -> segmenters' partitions -> Bayesian refinement
(:mod:`weakloc.refinement`).

:class:`Localizer` is the Python API (``from weakloc import Localizer``): it loads the
checkpoint and the segmenters once; calling it on a file path or an ``(H, W, 3) uint8``
array returns a :class:`Localization` (map at the image's exact size, mask, image score and
verdict). :func:`localize_images` (the CLI) uses it and writes, per image with id ``<stem>``:

- ``<stem>_prob.png``: the refined map, 8-bit gray at the input's exact size (value/255 is
  the probability; :func:`weakloc.io.write_prob`);
- ``<stem>_mask.png``: 0/255, ``prob > 0.5`` of that written map;
- ``<stem>_overlay.jpg``: the image with the map as a red tint (opacity 0.6 x prob);
- ``<stem>_photo.jpg``: the image as it was read (EXIF orientation applied, 8-bit RGB), so
  the gallery can show any input format;

and ``scores.csv`` (:data:`SCORE_COLUMNS`), ``run.json`` (settings, checkpoint, operating
point, failures) and ``index.html`` (the gallery, :mod:`weakloc.gallery`). Two inputs with
the same stem get ids ``<stem>``, ``<stem>_<ext>``, then ``<stem>_<ext>_<n>``.

The **verdict** is ``manipulated`` when the image score is above the checkpoint's operating
point (:func:`weakloc.detection.operating_point`: the threshold chosen on the validation
split, or 0.5 for checkpoints that store none; ``threshold_source`` says which).

Any readable format (JPEG, PNG, TIFF, WebP, BMP; grayscale, palette, RGBA, CMYK, 16-bit) is
converted to 8-bit RGB (:func:`weakloc.io.read_rgb_stored`). A JPEG's EXIF orientation is
honoured: the detector reads the pixels as stored (their compression grid), and the maps,
mask, overlay and segmentation are in the orientation a viewer shows. Images of any size: the detector runs
in native-resolution tiles above ``cams.max_side`` (see :mod:`weakloc.cams`); the segmenters
see the whole image. A file that cannot be read is named on stderr with the reason and
skipped; the caller gets the list of failures.
"""

from __future__ import annotations

import copy
import csv
import io as _io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from weakloc.errors import WeaklocError
from weakloc.io import (
    atomic_path,
    exif_orientation,
    inside,
    list_images,
    orient_array,
    quantize_prob,
    read_rgb_stored,
    to_rgb,
    write_mask,
    write_prob,
    write_text_atomic,
)

OVERLAY_OPACITY = 0.6
OVERLAY_QUALITY = 90
SCORE_COLUMNS = ["id", "score", "verdict", "threshold", "threshold_source", "prob", "mask", "overlay", "photo",
                 "input"]
MANIPULATED, AUTHENTIC = "manipulated", "authentic"


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
    """

    prob: np.ndarray
    mask: np.ndarray
    score: float
    threshold: float
    threshold_source: str

    @property
    def manipulated(self) -> bool:
        """The verdict: ``score > threshold``."""
        return self.score > self.threshold

    @property
    def verdict(self) -> str:
        """``"manipulated"`` or ``"authentic"``."""
        return MANIPULATED if self.manipulated else AUTHENTIC


@dataclass
class LocalizeResult:
    """What :func:`localize_images` did: one row per written image, one message per failure."""

    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def overlay(rgb: np.ndarray, prob: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """Tint ``rgb`` ``(H, W, 3) uint8`` red where ``prob`` ``(H, W) in [0, 1]`` is high; returns uint8."""
    a = (np.clip(prob, 0.0, 1.0) * opacity)[..., None]
    red = np.array([255.0, 0.0, 0.0], dtype=np.float32)
    return np.clip(rgb.astype(np.float32) * (1.0 - a) + red * a + 0.5, 0, 255).astype(np.uint8)


def _write_jpeg(rgb: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="JPEG", quality=OVERLAY_QUALITY)


def _unique_ids(paths: Sequence[Path]) -> list[str]:
    seen: set[str] = set()
    ids = []
    for p in paths:
        cand = p.stem
        if cand in seen:
            cand = f"{p.stem}_{p.suffix.lstrip('.').lower() or 'file'}"
        base, n = cand, 2
        while cand in seen:
            cand = f"{base}_{n}"
            n += 1
        seen.add(cand)
        ids.append(cand)
    return ids


def build_segmenters(names: Sequence[str], config: dict) -> list[Callable[[np.ndarray], np.ndarray]]:
    """The named segmenters with their settings from ``config["segmenters"][name]``."""
    from weakloc.segmenters import build_segmenter

    return [build_segmenter(name, config["segmenters"].get(name, {})) for name in names]


def segment_image(rgb: np.ndarray, segmenters: Sequence[Callable[[np.ndarray], np.ndarray]],
                  max_side: int | None = None, coarse: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Each segmenter's ``(H, W) int32`` partition of ``rgb`` ``(H, W, 3) uint8``.

    A map-prompted segmenter (``needs_map``, e.g. ``sam_prompt``) is called as
    ``seg(rgb, coarse)`` at full resolution; while ``coarse`` is None (the segmenters run
    beside the detector) its entry is None and :func:`fill_prompted` computes it later.

    ``max_side`` (``localize.segment_max_side``; None = full resolution): an image whose longer
    side exceeds it is segmented at that size (area-averaged down-scale) and the labels are
    mapped back by nearest neighbour, which keeps every region 4-connected and every pixel in
    exactly one region. Cheaper (SLIC's cost grows with the pixel count), and coarser at the
    region edges; it changes the maps, so it is off by default (docs/localization.md).
    """
    H, W = rgb.shape[:2]
    plain = [seg for seg in segmenters if not getattr(seg, "needs_map", False)]
    if max_side is None or max(H, W) <= int(max_side):
        done = [seg(rgb) for seg in plain]
    else:
        s = int(max_side) / max(H, W)
        h, w = max(1, round(H * s)), max(1, round(W * s))
        small = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))
        rows = np.minimum((np.arange(H) * h) // H, h - 1)
        cols = np.minimum((np.arange(W) * w) // W, w - 1)
        done = [np.ascontiguousarray(seg(small)[np.ix_(rows, cols)]) for seg in plain]
    it = iter(done)
    return [next(it) if not getattr(seg, "needs_map", False) else (None if coarse is None else seg(rgb, coarse))
            for seg in segmenters]


def fill_prompted(rgb: np.ndarray, segmenters: Sequence[Callable], partitions: list | None,
                  coarse: np.ndarray) -> list[np.ndarray] | None:
    """``partitions`` with the entries of map-prompted segmenters (None) computed from ``coarse``."""
    if partitions is None:
        return None
    return [seg(rgb, coarse) if p is None else p for seg, p in zip(segmenters, partitions, strict=True)]


def detector_maps(stored: np.ndarray, orientation: int, model, meta: dict, config: dict, fusion: str,
                  sel: np.ndarray | None = None):
    """``(image probability, (B, H, W) block maps, (H, W) fused map)``, both maps as displayed.

    ``stored`` is the image as stored and ``orientation`` its EXIF orientation
    (:func:`weakloc.io.read_rgb_stored`): the detector reads the stored pixels (the JPEG's own
    8x8 grid, as in training); its block maps are then turned like the image a viewer shows.
    ``sel``: the stored image's SEL when already computed (:func:`weakloc.cams.block_maps`).
    """
    from weakloc.cams import block_maps
    from weakloc.fusion import fuse_with_config

    bm = block_maps(model, meta, stored, config["cams"]["method"], config["cams"]["max_side"], sel=sel)
    maps = bm.maps
    if orientation != 1:
        maps = np.ascontiguousarray(np.moveaxis(orient_array(np.moveaxis(maps, 0, -1), orientation), -1, 0))
    return bm.prob, maps, fuse_with_config(maps, fusion, bm.weights, config)


def refined_map(prob: float, maps: np.ndarray, coarse: np.ndarray, partitions: list[np.ndarray] | None,
                config: dict, image_threshold: float | None = None) -> np.ndarray:
    """The refined map (the fused map itself when there are no partitions).

    ``image_threshold``: the checkpoint's operating point (:func:`weakloc.operating_point.operating_point`),
    read by the decision's ``gate = "verdict"``.
    """
    from weakloc.refinement import refine_with_config

    if not partitions:
        return coarse
    return refine_with_config(coarse, partitions, config["refine"], image_prob=prob, block_maps=maps,
                              image_threshold=image_threshold)


def localize_image(rgb: np.ndarray, model, meta: dict, config: dict, fusion: str,
                   segmenters: Sequence[Callable[[np.ndarray], np.ndarray]],
                   orientation: int = 1) -> tuple[float, np.ndarray]:
    """The method on one ``(H, W, 3) uint8`` image, step by step in one thread (the reference
    :class:`Localizer` must equal): ``(image probability, (H, W) float32 map in [0, 1])``.

    ``rgb`` is the image as stored, ``orientation`` its EXIF orientation: the returned map has
    the displayed image's size and orientation, and the segmenters see the displayed image
    (segmented at ``localize.segment_max_side``). With no segmenters the fused map is
    returned unrefined.
    """
    prob, maps, coarse = detector_maps(rgb, orientation, model, meta, config, fusion)
    shown = orient_array(rgb, orientation)
    parts = segment_image(shown, segmenters, config["localize"]["segment_max_side"], coarse) if segmenters else None
    from weakloc.operating_point import operating_point

    return prob, refined_map(prob, maps, coarse, parts, config, operating_point(meta)[0])


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


def default_threads(segmenting: bool) -> int:
    """Torch CPU threads for ``weakloc localize``: ``OMP_NUM_THREADS`` if set, else the cores this
    process may use, less one for the segmenter thread when there is one (at least 1)."""
    from weakloc.runtime import available_threads

    return available_threads(1 if segmenting else 0)


SETTINGS_SOURCES = {"config": "the config given", "checkpoint": "the study that trained the checkpoint",
                    "defaults": "the schema's defaults (the checkpoint stores no study settings)"}


def resolve_settings(meta: dict, config: dict | None, overrides: dict | None = None,
                     checkpoint: str | Path = "checkpoint") -> tuple[dict, str]:
    """``(validated config, source)``: ``config`` when given (``source = "config"``), else the
    pipeline the checkpoint's study stored at training time (``"checkpoint"``), else the schema's
    defaults (``"defaults"``); then ``overrides`` (``{"section.key[.key]": value}``) are set."""
    from weakloc.config import validate_config

    if config is not None:
        chosen, source = copy.deepcopy(config), "config"
    elif meta.get("pipeline"):
        chosen, source = copy.deepcopy(meta["pipeline"]), "checkpoint"
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


@dataclass
class _Prepared:
    stored: np.ndarray
    orientation: int
    shown: np.ndarray
    partitions: list | None
    sel: np.ndarray | None = None


class Localizer:
    """The method as a Python object: load once, call on many images.

    Args:
        checkpoint: a WCBnet checkpoint (``weakloc train``).
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
    (taken as displayed) and returns a :class:`Localization`. :meth:`localize_many` runs a
    sequence of images as a two-stage pipeline (reading and segmenting the next image in a
    worker thread while the detector runs on this one); its results equal one call per image.
    """

    def __init__(self, checkpoint: str | Path, config: dict | None = None, *, segmenters: Sequence[str] | None = None,
                 fusion: str | None = None, device: str = "auto", threads: int | None = None,
                 overrides: dict | None = None) -> None:
        import torch

        from weakloc.fusion import FUSION_METHODS
        from weakloc.operating_point import operating_point
        from weakloc.runtime import resolve_device
        from weakloc.wcbnet import load_checkpoint

        if threads:
            torch.set_num_threads(int(threads))
        self.device = str(resolve_device(device))  # "cpu" | "cuda"
        self.checkpoint = Path(checkpoint)
        self.model, self.meta = load_checkpoint(self.checkpoint, map_location=self.device)
        self.config, self.settings_source = resolve_settings(self.meta, config, overrides, self.checkpoint)
        self.fusion = fusion or self.config["fusion"]["methods"][0]
        if self.fusion not in FUSION_METHODS:
            raise WeaklocError(f"unknown fusion {self.fusion!r} (choose from {', '.join(FUSION_METHODS)})")
        self.segmenter_names = list(self.config["segmenters"]["use"] if segmenters is None else segmenters)
        self.threshold, self.threshold_source = operating_point(self.meta)
        self.segmenters = build_segmenters(self.segmenter_names, self.config)
        self._pool: ThreadPoolExecutor | None = None

    def settings(self) -> dict:
        """What determines the maps: where the settings came from, fusion, segmenters and the config sections read."""
        cfg = self.config
        return {"source": self.settings_source, "fusion": self.fusion, "segmenters": self.segmenter_names,
                "cams": cfg["cams"], "fusion_settings": cfg["fusion"], "refine": cfg["refine"],
                "localize": cfg["localize"],
                "segmenter_settings": {n: cfg["segmenters"].get(n, {}) for n in self.segmenter_names}}

    def _worker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weakloc-segment")
        return self._pool

    def _segment(self, shown: np.ndarray) -> list[np.ndarray] | None:
        if not self.segmenters:
            return None
        return segment_image(shown, self.segmenters, self.config["localize"]["segment_max_side"])

    def _prepare(self, image, segment: bool) -> _Prepared:
        """Read ``image``; with ``segment`` also its partitions and SEL (the worker's share)."""
        from weakloc.sel import signed_error_level

        stored, orientation = as_stored_rgb(image)
        shown = orient_array(stored, orientation)
        if not segment:
            return _Prepared(stored, orientation, shown, None)
        sel_cfg = self.meta["config"]["sel"]
        sel = signed_error_level(stored, sel_cfg["qualities"], sel_cfg["scale"])
        return _Prepared(stored, orientation, shown, self._segment(shown), sel)

    def _finish(self, prep: _Prepared, partitions=None) -> Localization:
        score, maps, coarse = detector_maps(prep.stored, prep.orientation, self.model, self.meta, self.config,
                                            self.fusion, sel=prep.sel)
        if partitions is not None:  # a future: the segmenters ran beside the detector
            partitions = partitions.result()
        else:
            partitions = prep.partitions
        partitions = fill_prompted(prep.shown, self.segmenters, partitions, coarse)  # sam_prompt needs the map
        prob = quantize_prob(refined_map(score, maps, coarse, partitions, self.config, self.threshold))
        return Localization(prob=prob, mask=prob > 0.5, score=float(score), threshold=self.threshold,
                            threshold_source=self.threshold_source)

    def __call__(self, image) -> Localization:
        return self.localize(image)[0]

    def localize(self, image) -> tuple[Localization, np.ndarray]:
        """``(result, the (H, W, 3) uint8 image as displayed)``; the segmenters run in a worker
        thread beside the detector."""
        prep = self._prepare(image, segment=False)
        future = self._worker().submit(self._segment, prep.shown) if self.segmenters else None
        return self._finish(prep, future), prep.shown

    def localize_many(
        self, images: Iterable
    ) -> Iterator[tuple[object, Localization | WeaklocError, np.ndarray | None]]:
        """``(image, result or the WeaklocError reading it raised, image as displayed or None)``
        for each of ``images``, in order; the next image is read and segmented in a worker
        thread while the detector runs on the current one (at most two images in memory)."""
        items = list(images)
        pool = self._worker()
        ahead = pool.submit(self._prepare, items[0], True) if items else None
        for i, image in enumerate(items):
            current, ahead = ahead, (pool.submit(self._prepare, items[i + 1], True) if i + 1 < len(items) else None)
            try:
                prep = current.result()
            except WeaklocError as exc:
                yield image, exc, None
                continue
            yield image, self._finish(prep), prep.shown


def write_image_outputs(out: Path, image_id: str, loc: Localization, rgb: np.ndarray, source: str | Path) -> dict:
    """Write one image's four files into ``out``; returns its ``scores.csv`` row (plus width, height)."""
    names = {"prob": f"{image_id}_prob.png", "mask": f"{image_id}_mask.png",
             "overlay": f"{image_id}_overlay.jpg", "photo": f"{image_id}_photo.jpg"}
    write_prob(loc.prob, inside(out, names["prob"]))
    write_mask(loc.mask, inside(out, names["mask"]))
    _write_jpeg(overlay(rgb, loc.prob), inside(out, names["overlay"]))
    _write_jpeg(rgb, inside(out, names["photo"]))
    return {"id": image_id, "score": f"{loc.score:.6f}", "verdict": loc.verdict,
            "threshold": f"{loc.threshold:.6f}", "threshold_source": loc.threshold_source,
            **names, "input": str(source), "width": rgb.shape[1], "height": rgb.shape[0]}


def _checkpoint_info(localizer: Localizer) -> dict:
    meta = {k: v for k, v in localizer.meta.items() if k != "config"}
    return {"path": str(localizer.checkpoint), "meta": meta, "model": localizer.meta["config"]}


def _write_scores(out: Path, rows: list[dict]) -> None:
    """``out/scores.csv`` (:data:`SCORE_COLUMNS`) of the images done so far, atomically."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SCORE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "scores.csv", buf.getvalue())


def localize_images(inputs: Sequence[str | Path], checkpoint: str | Path, out_dir: str | Path,
                    config: dict | None = None, segmenters: Sequence[str] | None = None, fusion: str | None = None,
                    progress: bool = True, threads: int | None = None,
                    overrides: dict | None = None) -> LocalizeResult:
    """Localize manipulated regions in image files and folders (not recursive).

    Args:
        inputs: files and/or folders (folders contribute their image files).
        checkpoint: a WCBnet checkpoint (``weakloc train``).
        out_dir: output folder (created).
        config: a configuration (``cams``, ``fusion``, ``segmenters``, ``refine``); None: the
            checkpoint's study settings (:func:`resolve_settings`).
        overrides: settings set after that (:class:`Localizer`).
        segmenters: segmenter names (default: the config's ``segmenters.use``; ``[]`` = no refinement).
        fusion: fusion method (default: the first of ``fusion.methods``).
        threads: torch CPU threads (default :func:`default_threads`: the segmenters run in a
            worker thread beside the detector, so one core is left to them).

    Returns:
        :class:`LocalizeResult`; every failure is also printed to stderr as one line.
    """
    from tqdm import tqdm

    from weakloc.gallery import write_gallery
    from weakloc.runtime import set_threads
    from weakloc.version import __version__

    paths = list_images(list(inputs))
    if not paths:
        raise WeaklocError(f"no images found in {', '.join(str(i) for i in inputs)}")
    localizer = Localizer(checkpoint, config, segmenters=segmenters, fusion=fusion, threads=threads,
                          overrides=overrides)
    print(f"weakloc localize: settings of {SETTINGS_SOURCES[localizer.settings_source]}", file=sys.stderr)
    if not threads:  # the default depends on the segmenters the Localizer resolved (no compute ran yet)
        set_threads(default_threads(bool(localizer.segmenter_names)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = LocalizeResult()
    done = zip(localizer.localize_many(paths), _unique_ids(paths), strict=True)
    pending: list = []  # the files are encoded in a writer thread (at most two images queued)
    written = 0
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="weakloc-write") as writer_pool:
            for (path, loc, rgb), image_id in tqdm(done, total=len(paths), desc="localize", unit="img",
                                                   file=sys.stderr, disable=not progress):
                if isinstance(loc, WeaklocError):
                    msg = str(loc)
                    result.failures.append(msg)
                    tqdm.write(f"weakloc localize: skipped {msg}", file=sys.stderr)
                    continue
                pending.append(writer_pool.submit(write_image_outputs, out, image_id, loc, rgb, path))
                while len(pending) > 2 and pending[0].done() or len(pending) > 4:
                    result.rows.append(pending.pop(0).result())
                if len(result.rows) >= written + max(1, written // 50):  # scores as it goes (<= 2 % behind)
                    _write_scores(out, result.rows)
                    written = len(result.rows)
            while pending:
                result.rows.append(pending.pop(0).result())
    finally:
        # whatever ends the run (an error, Ctrl-C), the images already written keep their rows
        result.rows.extend(f.result() for f in pending if f.done() and f.exception() is None)
        _write_scores(out, result.rows)
    run = {"weakloc": __version__, "checkpoint": _checkpoint_info(localizer),
           "operating_point": {"threshold": localizer.threshold, "source": localizer.threshold_source,
                               **({"chosen": localizer.meta["image_threshold"]}
                                  if localizer.threshold_source == "validation" else {})},
           "settings": localizer.settings(), "settings_from": SETTINGS_SOURCES[localizer.settings_source],
           "inputs": [str(i) for i in inputs],
           "images": len(result.rows), "failures": result.failures}
    write_text_atomic(out / "run.json", json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    write_gallery(out, result.rows, run)
    return result
