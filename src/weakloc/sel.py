"""Signed error level (SEL): the detector's input (METHOD.md step 1).

[paper] WCBnet reads the *signed-value error level* of an image: the difference between the
image and a JPEG-recompressed copy of it, keeping the sign (error level analysis without the
absolute value).

[ours] The exact recompression settings are not stated in the papers' abstracts; this module
fixes them so that the SEL of an image is a deterministic function of its pixels:

- encoder: Pillow's JPEG writer (libjpeg / libjpeg-turbo), baseline (not progressive),
  ``optimize=False`` (Huffman table optimisation changes only the file size, never the
  decoded pixels, so it is left off for speed);
- quantisation: the standard IJG tables scaled to ``quality`` (Pillow's ``quality=q``);
- chroma subsampling: **4:4:4** (``subsampling=0``). With 4:2:0 the chroma loss of the
  re-encoding itself would dominate the colour channels of the SEL everywhere in the image
  and mask the quantisation traces of the image's own history;
- decoding: Pillow's default decoder, converted back to RGB.

Each quality q in ``qualities`` contributes three channels (R, G, B of
``(rgb - recompressed_q) / scale``), stacked in the order of ``qualities``.

**Windows of a large image** (:func:`signed_error_diff_window`, :meth:`SelSettings.window`): the
SEL of rows ``y0:y1`` and columns ``x0:x1`` computed from a window of the image only, equal to
those rows and columns of the whole image's SEL, so a very large photo never holds its whole
SEL (48 bytes per pixel with four qualities) at once (:func:`weakloc.cams.block_maps` computes
it per tile). Why it is equal: the encoder converts colour per pixel and transforms and
quantises each 8 x 8 block on its own (with 4:4:4 chroma, the project's setting, there is no
chroma down- or up-sampling), and the decoder inverts each block on its own; so a window whose
edges lie on the block grid (or on the image's own edges, where the encoder pads the last
partial block the same way) re-encodes every one of its blocks exactly as the whole image does.
The window is widened to the 16-pixel grid of :data:`JPEG_GRID` plus one 16-pixel MCU of
context on each inner side, then cropped: that also covers 4:2:0 chroma (2 x 2 averaging
inside 16 x 16 MCUs when encoding; "fancy" upsampling, which reads the neighbouring chroma
sample, when decoding). ``tests/test_sel.py`` checks the equality for both subsamplings.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from weakloc.config import Section
from weakloc.errors import WeaklocError

#: Pillow JPEG options of the re-encoding; ``quality`` is added per level.
JPEG_OPTIONS = {"subsampling": 0, "optimize": False, "progressive": False}
#: The grid a window of the image is aligned to: JPEG's 8 x 8 blocks and the 16 x 16 MCU of 4:2:0 chroma.
JPEG_GRID = 16


def recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    """JPEG re-encode ``rgb`` at ``quality`` with :data:`JPEG_OPTIONS` and decode it.

    Args:
        rgb: ``(H, W, 3) uint8`` image.
        quality: JPEG quality in 1..100.

    Returns:
        ``(H, W, 3) uint8`` decoded recompressed image.
    """
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=int(quality), **JPEG_OPTIONS)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def signed_error_diff(rgb: np.ndarray, qualities: Sequence[int]) -> np.ndarray:
    """The unscaled signed error level: integer differences ``rgb - recompress(rgb, q)``.

    Args:
        rgb: ``(H, W, 3) uint8`` RGB image (any H, W >= 1).
        qualities: Q JPEG qualities, each in 1..100 (``sel.qualities``).

    Returns:
        ``(3 * Q, H, W) int16`` in ``[-255, 255]``, channel ``3 * i + c`` for quality
        ``qualities[i]`` and colour c. :func:`signed_error_level` is this divided by the scale;
        training keeps this compact form in memory (``weakloc.training``). Deterministic.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise WeaklocError(f"signed_error_level: expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    out = np.empty((3 * len(qualities), h, w), dtype=np.int16)
    base = rgb.astype(np.int16)
    for i, q in enumerate(qualities):
        out[3 * i:3 * i + 3] = np.moveaxis(base - recompress(rgb, int(q)).astype(np.int16), 2, 0)
    return out


def _window_bounds(start: int, stop: int, length: int) -> tuple[int, int]:
    """``[start, stop)`` widened to :data:`JPEG_GRID` multiples plus one grid step of context,
    within ``[0, length)``."""
    g = JPEG_GRID
    return max(0, (start // g - 1) * g), min(length, (-(-stop // g) + 1) * g)


def signed_error_diff_window(rgb: np.ndarray, qualities: Sequence[int], rows: tuple[int, int],
                             cols: tuple[int, int]) -> np.ndarray:
    """``signed_error_diff(rgb, qualities)[:, y0:y1, x0:x1]`` (``rows = (y0, y1)``, ``cols = (x0, x1)``),
    computed from a window of ``rgb`` around those pixels only (module docstring: why it is equal).

    Returns ``(3 * Q, y1 - y0, x1 - x0) int16``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3:
        return signed_error_diff(rgb, qualities)  # the error names the expected shape
    (y0, y1), (x0, x1) = rows, cols
    H, W = rgb.shape[:2]
    if not (0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W):
        raise WeaklocError(f"signed_error_level: window rows {y0}:{y1}, columns {x0}:{x1} "
                           f"outside an image of {H} x {W}")
    wy0, wy1 = _window_bounds(y0, y1, H)
    wx0, wx1 = _window_bounds(x0, x1, W)
    diff = signed_error_diff(rgb[wy0:wy1, wx0:wx1], qualities)
    if (wy0, wy1, wx0, wx1) == (y0, y1, x0, x1):
        return diff
    return np.ascontiguousarray(diff[:, y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0])


def scale_error_diff(diff: np.ndarray, scale: float) -> np.ndarray:
    """``(3Q, H, W) float32`` SEL from integer differences (any integer dtype): ``diff / scale``."""
    return diff.astype(np.float32) / np.float32(scale)


def signed_error_level(rgb: np.ndarray, qualities: Sequence[int], scale: float) -> np.ndarray:
    """The signed error level of ``rgb`` at each JPEG quality.

    Args:
        rgb: ``(H, W, 3) uint8`` RGB image (any H, W >= 1).
        qualities: Q JPEG qualities, each in 1..100 (``sel.qualities``).
        scale: positive constant the signed difference (in 0..255 units) is divided by
            (``sel.scale``).

    Returns:
        ``(3 * Q, H, W) float32``: channel ``3 * i + c`` is
        ``(rgb[..., c] - recompress(rgb, qualities[i])[..., c]) / scale``; values lie in
        ``[-255 / scale, 255 / scale]`` and are mostly near 0. Deterministic.
    """
    return scale_error_diff(signed_error_diff(rgb, qualities), scale)


@dataclass(frozen=True)
class SelSettings(Section):
    """The ``sel`` config section (see the schema for each key; ``from_section`` checks it and fills
    what a checkpoint's stored section lacks)."""

    SECTION = "sel"

    qualities: list[int]
    scale: float

    def of(self, rgb: np.ndarray) -> np.ndarray:
        """:func:`signed_error_level` of ``rgb`` with these settings."""
        return signed_error_level(rgb, self.qualities, float(self.scale))

    def window(self, rgb: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """``self.of(rgb)[:, y0:y1, x0:x1]`` computed from a window of ``rgb`` only
        (:func:`signed_error_diff_window`): ``(3Q, y1 - y0, x1 - x0) float32``."""
        return scale_error_diff(signed_error_diff_window(rgb, self.qualities, rows, cols), float(self.scale))
