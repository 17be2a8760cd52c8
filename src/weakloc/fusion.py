"""Fusion of the per-block activation maps into one coarse localization map (METHOD.md step 4).

The papers name the step ("fusion of multi-view activation maps into a coarse map") but not
its rule; the four methods here are this project's reconstruction [ours]:

- ``attention``: the image's own cross-block attention weights ``w_b`` (what WCBnet used for
  its decision), ``C = sum_b w_b M_b / sum_b w_b``.
- ``mean``: ``C = mean_b M_b``.
- ``max``: ``C = max_b M_b``.
- ``wavelet``: each map is decomposed with a 2-D discrete wavelet transform (PyWavelets); the
  approximation bands are averaged, and at every detail coefficient the block with the
  largest magnitude wins (a classic multi-focus fusion rule); the result is inverted,
  cropped to the image size and clipped to ``[0, 1]``.

Every method maps ``(B, H, W) float in [0, 1]`` to ``(H, W) float32 in [0, 1]``.
:func:`fuse_folder` is the step ``weakloc fuse``: a cams folder in, a folder of fused maps out.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pywt
from tqdm import tqdm

from weakloc.blockmaps import read_block_maps, read_blocks_csv, weight_columns
from weakloc.config import section_defaults
from weakloc.errors import WeaklocError
from weakloc.io import inside, row_chunks, write_prob
from weakloc.shards import Shard, shard_items

FUSION_METHODS = ("attention", "mean", "max", "wavelet")


def _check_maps(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] < 1 or maps.shape[1] < 1 or maps.shape[2] < 1:
        raise WeaklocError(f"fusion: block maps must have shape (B, H, W) with B >= 1, got {maps.shape}")
    return maps


def _attention_weights(maps: np.ndarray, weights: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """The checked block weights of ``attention``, normalised to sum 1 ``(B,) float64``."""
    if weights is None:
        raise WeaklocError("fusion: method attention needs the image's block weights (weights=None)")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != maps.shape[0]:
        raise WeaklocError(f"fusion: {w.shape[0]} block weights for {maps.shape[0]} block maps")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise WeaklocError(f"fusion: block weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def _wavelet(maps: np.ndarray, wavelet: str, level: int) -> np.ndarray:
    try:
        wav = pywt.Wavelet(wavelet)
    except ValueError:
        raise WeaklocError(f"fusion: unknown PyWavelets wavelet {wavelet!r} (key fusion.wavelet.name)") from None
    _, h, w = maps.shape
    # Small maps cannot take a deep decomposition: use the deepest level their size allows.
    max_level = pywt.dwt_max_level(min(h, w), wav.dec_len)
    level = max(0, min(level, max_level))
    if level == 0:
        return maps.mean(axis=0, dtype=np.float64)
    # coeffs of each map: [cA_n, (cH_n, cV_n, cD_n), ..., (cH_1, cV_1, cD_1)], stacked over B
    # by passing axes=(-2, -1) on the whole (B, H, W) array.
    coeffs = pywt.wavedec2(maps.astype(np.float64), wav, level=level, axes=(-2, -1))
    fused = [coeffs[0].mean(axis=0)]
    for bands in coeffs[1:]:
        fused_bands = []
        for band in bands:  # (B, h_l, w_l)
            winner = np.argmax(np.abs(band), axis=0)
            fused_bands.append(np.take_along_axis(band, winner[None], axis=0)[0])
        fused.append(tuple(fused_bands))
    out = pywt.waverec2(fused, wav, axes=(-2, -1))
    return out[:h, :w]


def fuse(maps: np.ndarray, method: str, weights: Sequence[float] | np.ndarray | None = None,
         wavelet: str | None = None, level: int | None = None) -> np.ndarray:
    """Fuse block maps into one coarse map.

    Args:
        maps: ``(B, H, W)`` float block maps in ``[0, 1]`` (all at the image's size).
        method: one of :data:`FUSION_METHODS`.
        weights: ``(B,)`` non-negative block weights (needed by ``attention``; normalised to sum 1).
        wavelet, level: PyWavelets wavelet name and decomposition level of ``wavelet`` fusion
            (the level is lowered when the map is too small for it); None: the schema's
            ``fusion.wavelet`` default.

    Returns:
        ``(H, W) float32`` in ``[0, 1]``. ``attention``, ``mean`` and ``max`` are pixelwise and run
        over bands of rows (:func:`weakloc.io.row_chunks`: one band up to 4 megapixels).
    """
    maps = _check_maps(maps)
    if method in ("attention", "mean", "max"):
        # pixelwise: a band of rows at a time, so a very large image makes no full-size float64 copies
        w = _attention_weights(maps, weights) if method == "attention" else None
        out = np.empty(maps.shape[1:], dtype=np.float32)
        for r0, r1 in row_chunks(*maps.shape[1:]):
            band = maps[:, r0:r1]
            if method == "attention":
                fused = np.tensordot(w, band.astype(np.float64), axes=1)
            elif method == "mean":
                fused = band.mean(axis=0, dtype=np.float64)
            else:
                fused = band.max(axis=0)
            out[r0:r1] = np.clip(fused, 0.0, 1.0)
        return out
    if method == "wavelet":
        if wavelet is None or level is None:
            defaults = section_defaults("fusion.wavelet")
            wavelet = defaults["name"] if wavelet is None else wavelet
            level = defaults["level"] if level is None else level
        out = _wavelet(maps, wavelet, int(level))
    else:
        raise WeaklocError(f"fusion: unknown method {method!r} (choose from {', '.join(FUSION_METHODS)})")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def fuse_with_config(maps: np.ndarray, method: str, weights: Sequence[float] | np.ndarray | None,
                     config: dict) -> np.ndarray:
    """:func:`fuse` with the wavelet settings of a validated configuration's ``fusion`` section."""
    wcfg = config.get("fusion", {}).get("wavelet", {})  # a key it lacks: fuse takes the schema's default
    return fuse(maps, method, weights=weights, wavelet=wcfg.get("name"), level=wcfg.get("level"))


def fuse_folder(cams_dir: str | Path, method: str, out_dir: str | Path, config: dict,
                shard: Shard | None = None) -> int:
    """The fuse step: ``out_dir/{id}.png`` for every row of ``cams_dir/blocks.csv`` (or of its ``shard``).

    Reads each image's block maps ``cams_dir/block{b}/{id}.png`` (``(B, H, W)``) and block
    weights ``w1..wB`` (:mod:`weakloc.blockmaps`), fuses them with ``method`` and the wavelet
    settings of ``config["fusion"]`` (:func:`fuse_with_config`) and writes the ``(H, W)`` map
    as an 8-bit PNG. Returns the number of maps written.
    """
    if method not in FUSION_METHODS:
        raise WeaklocError(f"unknown fusion method {method!r} (choose from {', '.join(FUSION_METHODS)})")
    cams_dir, out = Path(cams_dir), Path(out_dir)
    df = shard_items(read_blocks_csv(cams_dir), shard)
    wcols = weight_columns(df)
    out.mkdir(parents=True, exist_ok=True)
    for row in tqdm(df.to_dict("records"), desc=f"fuse {method}", unit="img", file=sys.stderr):
        maps = read_block_maps(cams_dir, row["id"], len(wcols))
        weights = np.array([row[c] for c in wcols], dtype=np.float64)
        write_prob(fuse_with_config(maps, method, weights, config), inside(out, f"{row['id']}.png"))
    return len(df)
