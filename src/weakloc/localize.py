"""``weakloc localize``: the whole method on a user's images, end to end.

For each image: signed error level -> WCBnet -> per-block maps (:mod:`weakloc.cams`) ->
fusion (:mod:`weakloc.fusion`) -> segmenters' partitions -> Bayesian refinement
(:mod:`weakloc.refinement`). Written to the output folder, per image with id ``<stem>``:

- ``<stem>_prob.png``: the refined map, 8-bit gray at the input's exact size (value/255 is
  the probability; :func:`weakloc.io.write_prob`);
- ``<stem>_mask.png``: 0/255, ``prob > 0.5``;
- ``<stem>_overlay.jpg``: the image with the map as a red tint (opacity 0.6 x prob);

and one ``scores.csv`` (``id, score, prob, mask, overlay``: ``score`` is the image-level
probability, the others are file names in the folder). Two inputs with the same stem get
ids ``<stem>``, ``<stem>_<ext>``, then ``<stem>_<ext>_<n>``.

Any readable format (JPEG, PNG, TIFF, WebP, BMP; grayscale, palette, RGBA, CMYK, 16-bit) is
converted to 8-bit RGB by :func:`weakloc.io.read_rgb`. Images of any size: the detector runs
in native-resolution tiles above ``cams.max_side`` (see :mod:`weakloc.cams`); the segmenters
see the whole image. A file that cannot be read is named on stderr with the reason and
skipped; the caller gets the list of failures.
"""

from __future__ import annotations

import csv
import io as _io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from weakloc.cams import block_maps
from weakloc.errors import WeaklocError
from weakloc.fusion import FUSION_METHODS, fuse_with_config
from weakloc.io import atomic_path, list_images, read_rgb, write_mask, write_prob
from weakloc.refinement import refine_with_config

OVERLAY_OPACITY = 0.6
OVERLAY_QUALITY = 90
SCORE_COLUMNS = ["id", "score", "prob", "mask", "overlay"]


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


def localize_image(rgb: np.ndarray, model, meta: dict, config: dict, fusion: str,
                   segmenters: Sequence[Callable[[np.ndarray], np.ndarray]]) -> tuple[float, np.ndarray]:
    """The method on one ``(H, W, 3) uint8`` image: ``(image probability, (H, W) float32 map in [0, 1])``.

    With no segmenters the fused map is returned unrefined.
    """
    bm = block_maps(model, meta, rgb, config["cams"]["method"], config["cams"]["max_side"])
    coarse = fuse_with_config(bm.maps, fusion, bm.weights, config)
    if not segmenters:
        return bm.prob, coarse
    partitions = [seg(rgb) for seg in segmenters]
    return bm.prob, refine_with_config(coarse, partitions, config["refine"], image_prob=bm.prob,
                                       block_maps=bm.maps)


def localize_images(inputs: Sequence[str | Path], checkpoint: str | Path, out_dir: str | Path,
                    config: dict, segmenters: Sequence[str] | None = None, fusion: str | None = None,
                    progress: bool = True) -> LocalizeResult:
    """Localize manipulated regions in image files and folders (not recursive).

    Args:
        inputs: files and/or folders (folders contribute their image files).
        checkpoint: a WCBnet checkpoint (``weakloc train``).
        out_dir: output folder (created).
        config: a validated configuration (``cams``, ``fusion``, ``segmenters``, ``refine``).
        segmenters: segmenter names (default ``["slic"]``; ``[]`` = no refinement).
        fusion: fusion method (default: the first of ``fusion.methods``).

    Returns:
        :class:`LocalizeResult`; every failure is also printed to stderr as one line.
    """
    from weakloc.wcbnet import load_checkpoint
    import torch

    fusion = fusion or config["fusion"]["methods"][0]
    if fusion not in FUSION_METHODS:
        raise WeaklocError(f"unknown fusion {fusion!r} (choose from {', '.join(FUSION_METHODS)})")
    names = ["slic"] if segmenters is None else list(segmenters)
    paths = list_images(list(inputs))
    if not paths:
        raise WeaklocError(f"no images found in {', '.join(str(i) for i in inputs)}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta = load_checkpoint(checkpoint, map_location=device)
    segs = build_segmenters(names, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = LocalizeResult()
    for path, image_id in tqdm(list(zip(paths, _unique_ids(paths))), desc="localize", unit="img",
                               file=sys.stderr, disable=not progress):
        try:
            rgb = read_rgb(path)
        except WeaklocError as exc:
            msg = str(exc)
            result.failures.append(msg)
            tqdm.write(f"weakloc localize: skipped {msg}", file=sys.stderr)
            continue
        score, prob = localize_image(rgb, model, meta, config, fusion, segs)
        names_out = {"prob": f"{image_id}_prob.png", "mask": f"{image_id}_mask.png",
                     "overlay": f"{image_id}_overlay.jpg"}
        write_prob(prob, out / names_out["prob"])
        write_mask(prob > 0.5, out / names_out["mask"])
        _write_jpeg(overlay(rgb, prob), out / names_out["overlay"])
        result.rows.append({"id": image_id, "score": f"{score:.6f}", **names_out})
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    with atomic_path(out / "scores.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return result
