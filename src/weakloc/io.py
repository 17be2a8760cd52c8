"""Reading images and masks, writing maps atomically.

Every file the study writes goes through :func:`atomic_path`: the data is written to a
temporary file beside the target and renamed over it, so an interrupted run never leaves a
half-written file that a rerun would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def staged_dir(out_dir: str | Path, label: str = "tmp") -> Iterator[Path]:
    """A new folder beside ``out_dir`` (``.<name>.<label>-XXXX``, the usual permissions) to build
    it in: when the ``with`` block ends without an error it replaces ``out_dir``
    (:func:`replace_dir`); after an error it is removed and ``out_dir`` is left as it was."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{label}-", dir=out_dir.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the folder the usual permissions
    try:
        yield tmp
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def inside(out_dir: str | Path, name: str) -> Path:
    """``out_dir / name``, refused unless it is a plain file name that stays inside ``out_dir``.

    Every per-image output path is built through this (names come from manifest ids and file
    stems), so no id such as ``../x`` or ``/tmp/x`` can make a step write outside its folder.
    """
    out_dir = Path(out_dir)
    target = out_dir / name
    if not name or Path(name).name != name or name in (".", "..") or \
            not target.resolve().is_relative_to(out_dir.resolve()):
        raise WeaklocError(f"{out_dir}: refusing to write {name!r} (not a plain file name inside the output folder)")
    return target


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (``WeaklocError`` naming the file when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise WeaklocError(f"{path}: cannot read ({exc.strerror or exc})") from None


PARTIAL_FINGERPRINT = "fingerprint.json"


def partial_dir(out_dir: str | Path) -> Path:
    """The work folder of ``out_dir`` (``<parent>/.<name>.partial``), beside it, never inside it."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.partial")


@contextlib.contextmanager
def resumable_dir(out_dir: str | Path, fingerprint: dict) -> Iterator[Path]:
    """A work folder for a step's per-image files that survives a killed job; published as ``out_dir``.

    Snakemake deletes an incomplete job's declared output folder before it reruns the job, so
    the files are first written to :func:`partial_dir`, which is not a declared output. It
    holds ``fingerprint.json``: everything the files depend on (the step, its settings, the
    data's and the checkpoint's hashes). A rerun with the same fingerprint keeps the files
    already there (the caller skips those images); with another fingerprint the folder is
    emptied first, so nothing stale is ever reused. When the ``with`` block ends without an
    error the folder atomically replaces ``out_dir`` (without its fingerprint); after an error
    or a kill it stays for the next run.
    """
    work = partial_dir(out_dir)
    record = json.dumps(fingerprint, indent=2, sort_keys=True) + "\n"
    fp = work / PARTIAL_FINGERPRINT
    if work.is_dir():
        try:
            same = fp.read_text(encoding="utf-8") == record
        except OSError:
            same = False
        if not same:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for stray in work.rglob(".*.tmp*"):  # temporaries of a write a kill interrupted
        stray.unlink()
    write_text_atomic(fp, record)
    yield work
    fp.unlink()
    replace_dir(work, out_dir)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


#: EXIF orientation (tag 0x0112) -> the numpy operation that shows the stored pixels upright,
#: the same mapping as Pillow's ``ImageOps.exif_transpose`` (a test checks it).
_ORIENT_OPS = {
    2: lambda a: a[:, ::-1],                    # mirrored left-right
    3: lambda a: a[::-1, ::-1],                 # rotated 180
    4: lambda a: a[::-1],                       # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),              # transposed
    6: lambda a: np.rot90(a, -1),               # rotated 90 clockwise to display
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),                # rotated 90 counter-clockwise to display
}


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) a viewer applies to an open JPEG; 1 for other formats.

    Only JPEG's tag is honoured (the formats cameras write; :func:`to_rgb` and
    ``weakloc.detection`` agree on this); an invalid value counts as 1.
    """
    if img.format != "JPEG":
        return 1
    value = img.getexif().get(0x0112, 1)
    return int(value) if value in _ORIENT_OPS else 1


def orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` to an ``(H, W, ...)`` array (image, map or mask) as a viewer would."""
    op = _ORIENT_OPS.get(int(orientation))
    return arr if op is None else np.ascontiguousarray(op(arr))


def to_rgb(img: Image.Image, orient: bool = True) -> Image.Image:
    """Convert any Pillow image (L, P, RGBA, CMYK, I;16, I, F, ...) to 8-bit RGB.

    With ``orient`` a JPEG's EXIF orientation is applied (the image as a viewer shows it);
    without, the pixels stay as stored. 16-bit and float images are scaled from their own
    range to 0..255; alpha is dropped (composited on black would invent content, so it is
    simply discarded).
    """
    img = ImageOps.exif_transpose(img) if orient and img.format == "JPEG" else img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    return img.convert("RGB")


def read_rgb(path: str | Path, orient: bool = True) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB.

    ``orient`` (default): a JPEG's EXIF orientation is applied, so the array is the image as
    a viewer shows it (and as masks are drawn on it). ``orient=False``: the pixels as stored,
    on the JPEG's own 8x8 compression grid (:func:`read_rgb_stored`).
    Raises :class:`WeaklocError` naming the file when it is missing or not a readable image.
    """
    rgb, orientation = read_rgb_stored(path)
    return orient_array(rgb, orientation) if orient else rgb


def read_rgb_stored(path: str | Path) -> tuple[np.ndarray, int]:
    """``(pixels as stored (H, W, 3) uint8, EXIF orientation 1..8)`` of an image file.

    ``orient_array(pixels, orientation)`` is what :func:`read_rgb` returns. Raises
    :class:`WeaklocError` naming the file when it is missing or not a readable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(to_rgb(img, orient=False), dtype=np.uint8).copy(), exif_orientation(img)
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


#: Pixels a step over a full-resolution map handles at a time (a band of rows): bounds the
#: temporary arrays of very large images; a map of at most this many pixels is one band.
CHUNK_PIXELS = 1 << 22


def row_chunks(height: int, width: int) -> list[tuple[int, int]]:
    """``(r0, r1)`` row ranges covering an ``height x width`` map, each of at most :data:`CHUNK_PIXELS`
    pixels (at least one row); one range when the whole map fits."""
    step = max(1, CHUNK_PIXELS // max(1, width))
    return [(r0, min(height, r0 + step)) for r0 in range(0, height, step)]


def index_labels(labels: np.ndarray) -> np.ndarray:
    """Integer region labels ready for indexing and ``np.bincount``: kept in their own type (an
    ``intp`` copy of an ``int32`` partition takes 8 bytes per pixel, and both give the same),
    converted to ``intp`` only when wider than it or ``uint64``."""
    labels = np.asarray(labels)
    if labels.dtype == np.uint64 or labels.dtype.itemsize > np.dtype(np.intp).itemsize:
        return labels.astype(np.intp)
    return labels


def write_mask(mask: np.ndarray, path: str | Path) -> None:
    """Write ``(H, W) bool`` as an 8-bit PNG with values 0 and 255."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)), mode="L").save(tmp, format="PNG")


def write_prob(prob: np.ndarray, path: str | Path) -> None:
    """Write ``(H, W) float in [0, 1]`` as an 8-bit grayscale PNG (0..255 = 0..1).

    A pixel is > 0.5 exactly when its stored value is >= 128, so thresholds survive the
    round trip through :func:`read_prob`.
    """
    arr = _prob_to_uint8(prob)
    with atomic_path(path) as tmp:
        Image.fromarray(arr, mode="L").save(tmp, format="PNG")


def _scaled_uint8(prob: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(prob, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def _prob_to_uint8(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim != 2:
        return _scaled_uint8(prob)
    out = np.empty(prob.shape, dtype=np.uint8)
    for r0, r1 in row_chunks(*prob.shape):  # elementwise: bands of rows, no full-size float64 copy
        out[r0:r1] = _scaled_uint8(prob[r0:r1])
    return out


def quantize_prob(prob: np.ndarray) -> np.ndarray:
    """``prob`` in the 8-bit steps of :func:`write_prob`: equal to :func:`read_prob` of the written file."""
    q = _prob_to_uint8(prob).astype(np.float32)
    q /= np.float32(255.0)
    return q


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
