"""Reading images and masks, writing maps atomically.

Every file the study writes goes through :func:`atomic_path`: the data is written to a
temporary file beside the target and renamed over it, so an interrupted run never leaves a
half-written file that a rerun would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from weakloc.errors import WeaklocError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")

_UMASK = os.umask(0)
os.umask(_UMASK)

# Large images are legitimate input here; keep Pillow's bomb check but at a generous limit.
Image.MAX_IMAGE_PIXELS = 400_000_000


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary name keeps the target's suffix so libraries that pick a format from the
    name (Pillow, numpy, torch) behave as they would with the real name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def replace_dir(tmp: str | Path, out_dir: str | Path) -> None:
    """Move a finished folder ``tmp`` to ``out_dir``, replacing an old one.

    The old folder is moved aside first and removed last, so at every moment ``out_dir`` is
    either the complete old folder or the complete new one.
    """
    tmp, out_dir = Path(tmp), Path(out_dir)
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow image (L, P, RGBA, CMYK, I;16, I, F, ...) to 8-bit RGB.

    16-bit and float images are scaled from their own range to 0..255; alpha is dropped
    (composited on black would invent content, so it is simply discarded).
    """
    img = ImageOps.exif_transpose(img) if img.format == "JPEG" else img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    return img.convert("RGB")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB.

    Raises :class:`WeaklocError` naming the file when it is missing or not a readable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(to_rgb(img), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise WeaklocError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = "not an image Pillow can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise WeaklocError(f"{path}: {reason}") from None
    except Image.DecompressionBombError as exc:
        raise WeaklocError(f"{path}: {exc}") from None


def read_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask as ``(H, W) bool`` (any non-zero pixel is manipulated)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L"))
    except FileNotFoundError:
        raise WeaklocError(f"{path}: mask not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise WeaklocError(f"{path}: unreadable mask ({exc})") from None
    return arr > 127


def write_mask(mask: np.ndarray, path: str | Path) -> None:
    """Write ``(H, W) bool`` as an 8-bit PNG with values 0 and 255."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(tmp, format="PNG")


def write_prob(prob: np.ndarray, path: str | Path) -> None:
    """Write ``(H, W) float in [0, 1]`` as an 8-bit grayscale PNG (0..255 = 0..1).

    A pixel is > 0.5 exactly when its stored value is >= 128, so thresholds survive the
    round trip through :func:`read_prob`.
    """
    arr = np.clip(np.rint(np.asarray(prob, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr, mode="L").save(tmp, format="PNG")


def read_prob(path: str | Path) -> np.ndarray:
    """Read a map written by :func:`write_prob` as ``(H, W) float32 in [0, 1]``."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise WeaklocError(f"{path}: map not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise WeaklocError(f"{path}: unreadable map ({exc})") from None


def list_images(inputs: list[str | Path]) -> list[Path]:
    """Expand files and folders (not recursive) into a sorted list of paths.

    Folders contribute files with an image suffix; files named directly are kept whatever
    their suffix, so a bad file the user named is reported rather than skipped.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out
