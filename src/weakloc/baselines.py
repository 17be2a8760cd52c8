"""Classic forensic baselines: ELA, NOI1, BLK and DCT maps, computed with pyIFD.

These are the hand-crafted splicing detectors of the Zampoglou et al. (2017) toolbox, in the
Python port ``pyIFD`` (PyPI, Apache-2.0; a dependency of weakloc).
They are not part of the method the study reproduces: they run on the same test images so
the tables can say how the weakly-supervised maps compare with detectors that need no
training at all.

=========  ============================================================  ===============
name       what the raw map measures (higher = more suspicious)          native grid
=========  ============================================================  ===============
``ela``    error level: |image - JPEG(image, q=90)|, mean over RGB         every pixel
``noi1``   local noise level: median absolute deviation of the finest    16 x 16 pixels
           diagonal wavelet (db8) coefficients of the luma, per block
``blk``    JPEG blocking-artefact grid strength per 8 x 8 block           8 x 8 pixels
``dct``    distance of each block's DCT coefficients from the            8 x 8 pixels
           quantisation lattice estimated for the whole image
=========  ============================================================  ===============

Two steps are ours (the toolbox leaves them to the evaluation) and are documented in
``docs/baselines.md``:

1. **Upsampling.** A block map is brought to the image size by giving every pixel the value
   of the block that contains it (nearest neighbour on the block grid, no interpolation),
   so a map is exactly aligned with the 8 x 8 JPEG grid where the detector works on it.
   NOI1's blocks are blocks of 8 x 8 wavelet coefficients, i.e. about 16 x 16 pixels with the
   db8 filter's 7-pixel shift; that alignment is approximate.
2. **Normalisation.** The raw maps have no calibrated scale (ELA is in grey levels, BLK can
   be negative, NOI1 is a standard deviation). Each map is rescaled per image, robustly:
   ``(m - p_lo) / (p_hi - p_lo)`` clipped to [0, 1], where ``p_lo`` and ``p_hi`` are the
   image's own 1st and 99th percentiles (``evaluate.baseline_percentiles``). A map with no
   spread (``p_hi - p_lo`` below 1e-12 of its scale, e.g. an all-zero DCT map) becomes all
   zeros: the detector flags nothing in that image. Because the rule is per image, every
   image with any spread gets some pixels above 0.5; the tables therefore report each
   baseline both at the fixed 0.5 threshold and at its oracle (best-F1) threshold.

**Non-JPEG inputs (PNG).** Every baseline still runs, on the decoded pixels. ELA, NOI1 and
BLK only ever read pixels. DCT reads the quantised DCT coefficients of a JPEG file directly
(via ``jpegio``); for any other file it takes the 8 x 8 block DCT of the decoded luma
instead, which still shows the traces of an earlier JPEG compression (the synthetic data set
saves some images as PNG after a JPEG history) and gives an all-zero map, hence all zeros
after normalisation, on a never-compressed image. The image is recognised as JPEG by its
content, not by its file name.

Polarity is the detectors' own: for NOI1 a spliced region may be *less* noisy than the host,
in which case its map ranks the host above the splice (pixel AUC below 0.5); we do not flip
maps per image, since that would use the ground truth.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from weakloc.errors import WeaklocError
from weakloc.io import inside, read_rgb, resumable_dir, write_prob
from weakloc.manifest import content_hash, read_manifest
from weakloc.shards import shard_items

#: Default percentiles of the per-image robust min-max normalisation.
DEFAULT_PERCENTILES = (1.0, 99.0)


def _pyifd(module: str):
    """Import ``pyIFD.<module>`` or say how to install it."""
    try:
        return __import__(f"pyIFD.{module}", fromlist=[module])
    except ImportError as exc:
        raise WeaklocError(
            f"the baselines need the pyIFD package ({exc}); install weakloc's dependencies "
            "(make install, or pip install -r requirements.lock)"
        ) from None


@contextlib.contextmanager
def _private_workdir() -> Iterator[None]:
    """Run inside a fresh temporary working directory, then return to the old one.

    pyIFD's ELA writes its recompressed copy to ``tmpResave.jpg`` in the *current* directory
    and deletes it afterwards; two ELA runs sharing a directory (parallel workflow jobs)
    would read each other's file. A private directory per call avoids that.
    """
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="weakloc-ela-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def is_jpeg(path: str | Path) -> bool:
    """True when the file's content is a JPEG (whatever its suffix)."""
    try:
        with Image.open(path) as img:
            return img.format == "JPEG"
    except FileNotFoundError:
        raise WeaklocError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError):
        return False


def _ela(path: Path, rgb: np.ndarray) -> np.ndarray:
    ela = _pyifd("ELA").ELA
    import cv2  # a dependency of pyIFD; its JPEG writer warns about float input on every call

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    with _private_workdir():
        return np.asarray(ela(str(path), Quality=90, Multiplier=1, Flatten=True), dtype=np.float64)


def _noi1(path: Path, rgb: np.ndarray) -> np.ndarray:
    return np.asarray(_pyifd("NOI1").GetNoiseMap(str(path), BlockSize=8), dtype=np.float64)


def _blk(path: Path, rgb: np.ndarray) -> np.ndarray:
    return np.asarray(_pyifd("BLK").GetBlockGrid(str(path))[0], dtype=np.float64)


def _dct(path: Path, rgb: np.ndarray) -> np.ndarray:
    dct = _pyifd("DCT")
    if is_jpeg(path):
        import jpegio  # a dependency of pyIFD

        return np.asarray(dct.GetDCTArtifact(jpegio.read(str(path))), dtype=np.float64)
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        return np.zeros((1, 1))
    # pyIFD's own PNG path reads BGR with OpenCV but weights channel 0 as red; give it RGB.
    return np.asarray(dct.GetDCTArtifact(rgb, png=True), dtype=np.float64)


@dataclass(frozen=True)
class Baseline:
    """One classic detector.

    ``raw(path, rgb)`` returns its score map on its own grid, ``(h, w) float64`` of any scale,
    where cell ``(i, j)`` covers image rows ``offset + cell * i ... offset + cell * (i + 1) - 1``
    (and the same for columns).
    """

    name: str
    description: str
    raw: Callable[[Path, np.ndarray], np.ndarray]
    cell: int
    offset: int


BASELINES: dict[str, Baseline] = {
    "ela": Baseline("ela", "error level analysis (JPEG q=90 resave)", _ela, cell=1, offset=0),
    "noi1": Baseline("noi1", "wavelet noise level per block (Mahdian & Saic 2009)", _noi1, cell=16, offset=-7),
    "blk": Baseline("blk", "JPEG block-artefact grid (Li et al. 2009)", _blk, cell=8, offset=0),
    "dct": Baseline("dct", "DCT quantisation inconsistency (Ye et al. 2007)", _dct, cell=8, offset=0),
}


def upsample_block_map(block_map: np.ndarray, cell: int, offset: int, shape: tuple[int, int]) -> np.ndarray:
    """Give every image pixel the value of the map cell that contains it.

    ``block_map``: ``(h, w)`` array on a grid of ``cell`` x ``cell`` pixel cells whose first
    cell starts at image row/column ``offset``. Pixels outside the grid take the nearest
    edge cell. Returns ``(H, W) float64`` with ``(H, W) = shape``.
    """
    block_map = np.asarray(block_map, dtype=np.float64)
    if block_map.ndim != 2 or block_map.size == 0:
        raise ValueError(f"expected a non-empty 2-D map, got shape {block_map.shape}")
    h, w = shape
    rows = np.clip((np.arange(h) - offset) // cell, 0, block_map.shape[0] - 1)
    cols = np.clip((np.arange(w) - offset) // cell, 0, block_map.shape[1] - 1)
    return block_map[np.ix_(rows, cols)]


def robust_normalise(score: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """Per-image robust min-max: ``(m - p_lo) / (p_hi - p_lo)`` clipped to [0, 1].

    ``score``: ``(H, W)`` float map of any scale (NaN counts as the minimum). Returns
    ``(H, W) float32 in [0, 1]``; all zeros when the map has no spread between its
    percentiles.
    """
    lo_p, hi_p = percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise WeaklocError(f"key evaluate.baseline_percentiles: need 0 <= low < high <= 100, got {list(percentiles)}")
    m = np.asarray(score, dtype=np.float64)
    finite = np.isfinite(m)
    if not finite.any():
        return np.zeros(m.shape, dtype=np.float32)
    m = np.where(finite, m, m[finite].min())
    lo, hi = np.percentile(m, [lo_p, hi_p])
    scale = max(abs(float(lo)), abs(float(hi)), 1.0)
    if hi - lo <= 1e-12 * scale:
        return np.zeros(m.shape, dtype=np.float32)
    return np.clip((m - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def baseline_map(name: str, image_path: str | Path,
                 percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """The baseline ``name``'s localization map of one image file.

    ``name``: one of :data:`BASELINES` (``ela``, ``noi1``, ``blk``, ``dct``). The file is read
    by path (the detectors need the file itself: DCT reads a JPEG's coefficients). Returns
    ``(H, W) float32 in [0, 1]`` at the image's size (as :func:`weakloc.io.read_rgb` reads
    it): the raw map upsampled on its block grid and normalised per image (module docstring).
    Raises :class:`WeaklocError` naming the file when it is unreadable or the detector fails.
    """
    if name not in BASELINES:
        raise WeaklocError(f"unknown baseline {name!r} (choose from {', '.join(BASELINES)})")
    base = BASELINES[name]
    path = Path(image_path).resolve()
    rgb = read_rgb(path)  # checks the file and gives the size the masks have
    try:
        raw = base.raw(path, rgb)
    except WeaklocError:
        raise
    except Exception as exc:  # pyIFD raises whatever numpy/OpenCV raise on odd inputs
        raise WeaklocError(f"{path}: baseline {name} failed ({type(exc).__name__}: {exc})") from None
    if raw.ndim != 2 or raw.size == 0:
        raise WeaklocError(f"{path}: baseline {name} returned a map of shape {raw.shape}")
    full = upsample_block_map(raw, base.cell, base.offset, rgb.shape[:2])
    return robust_normalise(full, percentiles)


def write_baseline_maps(name: str, manifest: str | Path, split: str, out_dir: str | Path,
                        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                        progress: bool = True, shard=None) -> dict:
    """Write ``out_dir/{id}.png`` (:func:`weakloc.io.write_prob`) for every image of ``split``.

    The maps go through a work folder (:func:`weakloc.io.resumable_dir`, keyed by the
    detector, ``percentiles`` and the images' bytes) that replaces ``out_dir`` when all are
    done, so a killed run resumes with the maps it had finished, and a change of percentiles
    or data recomputes them all. Returns ``{"baseline", "images", "written", "skipped",
    "seconds", "seconds_per_image"}`` (seconds over the maps written in this call).
    """
    from tqdm import tqdm

    if name not in BASELINES:
        raise WeaklocError(f"unknown baseline {name!r} (choose from {', '.join(BASELINES)})")
    rows = shard_items(read_manifest(manifest, split=split), shard)  # shard: weakloc.shards.Shard or None (all)
    fingerprint = {"step": "baseline", "baseline": name, "percentiles": [float(p) for p in percentiles],
                   "split": split, "data": content_hash(rows)}
    written = skipped = 0
    start = time.perf_counter()
    with resumable_dir(out_dir, fingerprint) as work:
        for row in tqdm(rows.itertuples(index=False), total=len(rows), desc=f"baseline {name}",
                        unit="img", file=sys.stderr, disable=not progress):
            target = inside(work, f"{row.id}.png")
            if target.exists():
                skipped += 1
                continue
            write_prob(baseline_map(name, row.image, percentiles), target)
            written += 1
    seconds = time.perf_counter() - start
    return {"baseline": name, "images": len(rows), "written": written, "skipped": skipped,
            "seconds": round(seconds, 3), "seconds_per_image": round(seconds / written, 4) if written else None}
