"""Perturbations of test images for the robustness protocol of IMDL-BenCo.

Four kinds, each with one numeric level (named ``<kind>-<level>``, e.g. ``jpeg-70``):

- ``jpeg``: re-compressed as JPEG at quality ``level`` (50-100 in the protocol; Pillow,
  4:2:0 chroma). The file is written as that JPEG, so the detector sees its traces.
- ``blur``: Gaussian blur with an odd kernel of ``level`` x ``level`` pixels (3-23). The
  standard deviation follows the kernel as in OpenCV when none is given:
  ``sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8``; the kernel is cut at radius ``(k - 1) / 2``;
  borders are mirrored without repeating the edge pixel (OpenCV's default border).
- ``noise``: additive Gaussian noise of variance ``level`` (3-23) on the 0-255 scale, per
  pixel and channel, drawn from a generator seeded by ``(seed, image id)``; rounded and
  clipped to 0-255.
- ``resize``: resized by the factor ``level`` (0.5-0.75) with bilinear interpolation; the mask
  is resized to the same size with nearest-neighbour sampling, so maps and masks stay
  pixel-aligned (the scorer never resizes).

Blurred, noisy and resized images are written as lossless PNG: the perturbation, not another
JPEG round trip, is what changes. A perturbed dataset (:func:`perturb_dataset`) has the
layout of a prepared one (``manifest.csv``, ``images/``, ``masks/``), holds only the
manipulated images of the chosen split that have a mask (the only ones pixel F1 reads), and
keeps their split name, so every step runs on it unchanged.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from weakloc.errors import WeaklocError
from weakloc.io import read_mask, read_rgb, staged_dir, write_mask
from weakloc.manifest import masked_rows, write_manifest

PERTURBATIONS = ("jpeg", "blur", "noise", "resize")
LEVEL_NAME = re.compile(r"(?P<kind>jpeg|blur|noise|resize)-(?P<level>[0-9]+(?:\.[0-9]+)?)")


def level_name(kind: str, level: float) -> str:
    """``jpeg-70``, ``blur-7``, ``noise-3``, ``resize-0.5``: the folder and table name of a level."""
    if kind not in PERTURBATIONS:
        raise WeaklocError(f"unknown perturbation {kind!r} (choose from {', '.join(PERTURBATIONS)})")
    return f"{kind}-{float(level):g}"


def parse_level(name: str) -> tuple[str, float]:
    """``("jpeg", 70.0)`` from ``jpeg-70``; a :class:`WeaklocError` for other names."""
    m = LEVEL_NAME.fullmatch(name)
    if not m:
        raise WeaklocError(f"{name!r} is not a perturbation level (expected e.g. jpeg-70, blur-7, noise-3, resize-0.5)")
    return m["kind"], float(m["level"])


def check_level(kind: str, level: float) -> None:
    """Refuse levels outside what each perturbation can mean."""
    ok = {"jpeg": 1 <= level <= 100 and float(level).is_integer(),
          "blur": level >= 1 and float(level).is_integer() and int(level) % 2 == 1,
          "noise": level >= 0,
          "resize": 0 < level <= 4}.get(kind)
    if ok is None:
        raise WeaklocError(f"unknown perturbation {kind!r} (choose from {', '.join(PERTURBATIONS)})")
    if not ok:
        need = {"jpeg": "an integer quality 1-100", "blur": "an odd integer kernel size",
                "noise": "a variance >= 0", "resize": "a factor in (0, 4]"}[kind]
        raise WeaklocError(f"perturbation {kind} level {level:g}: needs {need}")


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """The image encoded as JPEG at ``quality`` (4:2:0 chroma)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=int(quality), subsampling=2)
    return buf.getvalue()


def gaussian_blur(rgb: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian blur with a ``kernel`` x ``kernel`` window and OpenCV's default sigma for it."""
    from scipy.ndimage import gaussian_filter

    check_level("blur", kernel)
    k = int(kernel)
    if k == 1:
        return rgb.copy()
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    radius = (k - 1) // 2
    out = gaussian_filter(rgb.astype(np.float64), sigma=(sigma, sigma, 0), mode="mirror", radius=(radius, radius, 0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def gaussian_noise(rgb: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of ``variance`` (0-255 scale), rounded and clipped."""
    check_level("noise", variance)
    noisy = rgb.astype(np.float64) + rng.normal(0.0, np.sqrt(float(variance)), size=rgb.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def resize_pair(rgb: np.ndarray, mask: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Image (bilinear) and mask (nearest) resized by ``factor`` to the same size."""
    check_level("resize", factor)
    h, w = rgb.shape[:2]
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    img = np.asarray(Image.fromarray(rgb, mode="RGB").resize(size, Image.BILINEAR))
    msk = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize(size, Image.NEAREST)) > 127
    return img, msk


def noise_rng(seed: int, image_id: str) -> np.random.Generator:
    """The noise generator of one image: fixed by the seed and the id, not by the order of images."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def perturb_sample(rgb: np.ndarray, mask: np.ndarray, kind: str, level: float,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray | bytes, np.ndarray]:
    """One image perturbed: ``(JPEG bytes, mask)`` for ``jpeg``, ``(RGB uint8, mask)`` otherwise."""
    check_level(kind, level)
    if kind == "jpeg":
        return jpeg_bytes(rgb, int(level)), mask
    if kind == "blur":
        return gaussian_blur(rgb, int(level)), mask
    if kind == "noise":
        return gaussian_noise(rgb, level, rng if rng is not None else np.random.default_rng(0)), mask
    return resize_pair(rgb, mask, level)


def perturb_dataset(manifest: str | Path, split: str, name: str, out_dir: str | Path, seed: int = 0) -> int:
    """Write the perturbed copy ``name`` (e.g. ``jpeg-70``) of ``split``'s masked manipulated images.

    The folder is built under a temporary name beside ``out_dir`` and renamed at the end.
    Returns the number of images written.
    """
    kind, level = parse_level(name)
    check_level(kind, level)
    rows = masked_rows(manifest, split, " to perturb")
    with staged_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        records = []
        for row in rows.itertuples(index=False):
            rgb, mask = read_rgb(row.image), read_mask(row.mask)
            if mask.shape != rgb.shape[:2]:
                raise WeaklocError(f"{row.mask}: mask size differs from its image {row.image}")
            img, msk = perturb_sample(rgb, mask, kind, level, noise_rng(seed, row.id))
            if isinstance(img, bytes):
                image_path = tmp / "images" / f"{row.id}.jpg"
                image_path.write_bytes(img)
                height, width = rgb.shape[:2]
            else:
                image_path = tmp / "images" / f"{row.id}.png"
                Image.fromarray(img, mode="RGB").save(image_path, format="PNG")
                height, width = img.shape[:2]
            write_mask(msk, tmp / "masks" / f"{row.id}.png")
            records.append({"id": row.id, "split": split, "label": 1, "image": f"images/{image_path.name}",
                            "mask": f"masks/{row.id}.png", "width": width, "height": height,
                            "source": f"{row.source} + {name}"})
        write_manifest(pd.DataFrame(records), tmp / "manifest.csv")
    return len(records)
