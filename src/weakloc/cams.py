"""Activation maps per block: the multi-view maps of METHOD.md step 3.

[paper] The localization method draws "multi-view (multi-resolution) activation maps" from the
blocks of the WCBnet detector. [ours] How they are drawn is this project's reconstruction:

- ``method="score"`` (default): block b's own score map ``S_b`` (one logit per cell at the
  block's resolution) through a **sigmoid**, so a value is the block's manipulation
  probability for that cell. Not per-image min-max: min-max marks something in every image
  and was worse in the prototype (METHOD.md).
- ``method="gradcam"``: Grad-CAM of the image logit on block b's features:
  ``ReLU(sum_c alpha_c F_b[c])`` with ``alpha_c`` the spatial mean of ``d logit / d F_b[c]``.
  Grad-CAM has no absolute scale, so each block's map is divided by its own maximum over the
  image (a map that is zero everywhere stays zero). This normalisation marks something in
  every image, manipulated or not: compare its maps by ranking (AUC), not at 0.5.

Both are upsampled to the image's exact size with a bilinear interpolation that puts each
cell at the input pixel it is centred on (cell j of a block with stride S sits at pixel
``S * j + (s - 1) / 2``, s the stem's patch size, 1 without a stem; every stride-2
convolution of WCBnet has kernel 3 and padding 1), with the edge values held beyond the
first and last cell centres.

Large images. Resizing an image erases the JPEG traces the detector reads (METHOD.md: image
AUC 0.84 -> 0.56), so images whose longer side exceeds ``max_side`` are **not** resized: they
run in overlapping tiles at native resolution. Tile origins are multiples of
``lcm(8, 2**(B-1))``, so every tile keeps the 8x8 JPEG grid phase and the cell grid of every
block; each tile contributes only its core (a margin is cut from every inner edge: at least
64 pixels and more than the model's receptive radius plus two top-block cells, rounded up to
the alignment; the default model, stem stride 4, sees 94 pixels, so its margin is 160), so
the stitched score
maps equal the whole-image ones up to floating point. The block scores are pooled from the
stitched maps and the block weights come from the attention module applied to the
whole-image feature means, so ``prob`` and ``weights`` match a whole-image pass too. For
Grad-CAM each tile's gradient comes from that tile's own logit (the one trade-off: channel
weights ``alpha`` are per tile), and the raw maps are normalised after stitching. With
``score_context`` (score heads that compare each position with the image's mean feature) the
tiles' core features are stitched first and the heads run once on them with the whole
image's means, so those maps match a whole-image pass too (tested); the stitched features
take ``4 * sum_b C_b / (s * 2**b)**2`` bytes per pixel (15 for the default model: 180 MB for
a 12-megapixel image). Otherwise memory scales with ``max_side**2``, not with the image: the
SEL of a tiled image is computed tile by tile (:meth:`weakloc.sel.SelSettings.window`, equal to
the whole image's SEL on the tile, bit for bit) unless the caller passes the whole image's, and
the maps are upsampled a band of rows at a time (:func:`weakloc.io.row_chunks`).

The step ``weakloc cams`` is :func:`write_block_maps`; the folder it writes (``blocks.csv`` and
the maps) and the readers the later steps use are in :mod:`weakloc.blockmaps`, which needs no
torch, so the steps that only read maps start fast.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from weakloc.blockmaps import BLOCKS_CSV, blocks_csv_columns
from weakloc.errors import WeaklocError
from weakloc.io import (
    atomic_path,
    file_sha256,
    inside,
    orient_array,
    read_rgb_stored,
    resumable_dir,
    row_chunks,
    write_prob,
)
from weakloc.layout import block_variant
from weakloc.manifest import content_hash, read_manifest
from weakloc.operating_point import operating_point
from weakloc.sel import SelSettings
from weakloc.shards import Shard, shard_items
from weakloc.wcbnet import pool_score_map

CAM_METHODS = ("score", "gradcam")
TILE_MARGIN = 64


@dataclass
class BlockMaps:
    """The per-block maps of one image.

    Attributes:
        prob: image-level manipulation probability (sigmoid of WCBnet's logit), in ``[0, 1]``.
        maps: ``(B, H, W) float32`` in ``[0, 1]``, one map per block at the image's exact size.
        weights: ``(B,) float32`` the image's cross-block attention weights (sum 1).
        block_probs: ``(B,) float32`` sigmoid of each block's pooled score.
    """

    prob: float
    maps: np.ndarray
    weights: np.ndarray
    block_probs: np.ndarray


def _interp_axis(cells: torch.Tensor, axis: int, n_out: int, stride: int, offset: float) -> torch.Tensor:
    """Linear interpolation along ``axis`` from cell centres ``stride * j + offset`` to pixels 0..n_out-1."""
    n_in = cells.shape[axis]
    u = ((torch.arange(n_out, dtype=torch.float64) - offset) / stride).clamp_(0, n_in - 1)
    i0 = u.floor().long().clamp_(max=max(n_in - 2, 0))
    i1 = (i0 + 1).clamp_(max=n_in - 1)
    f = (u - i0).float()
    shape = [1] * cells.dim()
    shape[axis] = n_out
    f = f.view(shape)
    return cells.index_select(axis, i0) * (1 - f) + cells.index_select(axis, i1) * f


def upsample_cells(cells: torch.Tensor, stride: int, size: tuple[int, int], offset: float = 0.0) -> torch.Tensor:
    """Upsample ``(N, C, h, w)`` cell values of a block with ``stride`` to ``(N, C, H, W)``.

    Cell ``j`` is centred on pixel ``stride * j + offset`` (``offset = (s - 1) / 2`` for a
    stem of ``s x s`` patches, 0 without one); values are interpolated linearly between cell
    centres in each axis, and pixels past the first or last centre keep the edge value.
    """
    H, W = size
    if stride == 1 and offset == 0:
        return cells[..., :H, :W]
    return _interp_axis(_interp_axis(cells, -2, H, stride, offset), -1, W, stride, offset)


def _tiles(length: int, tile: int, align: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis: ``(start, stop, core_start, core_stop)`` covering ``[0, length)``.

    Starts and core bounds are multiples of ``align``; cores partition ``[0, length)``.
    """
    if length <= tile:
        return [(0, length, 0, length)]
    core = (tile - 2 * margin) // align * align
    if core < align:
        raise WeaklocError(f"cams: max_side {tile} is too small for tiling (needs > {2 * margin + align})")
    out = []
    c0 = 0
    while c0 < length:
        c1 = min(c0 + core, length)
        s0 = max(0, c0 - margin)
        s1 = min(length, s0 + tile)
        if s1 < c1 + margin and s1 < length:  # keep the margin after the core
            s1 = min(length, c1 + margin)
        out.append((s0, s1, c0, c1))
        c0 = c1
    return out


def block_strides(model) -> tuple[list[int], float]:
    """Each block's stride in input pixels and the offset of cell 0's centre.

    Block b (0-based) has stride ``s * 2**b`` with ``s = model.stem_stride`` (1 without a
    stem); a stem of ``s x s`` patches centres cell 0 at pixel ``(s - 1) / 2``.
    """
    stem = int(getattr(model, "stem_stride", 1))
    return [stem * 2 ** b for b in range(model.n_blocks)], (stem - 1) / 2.0


def receptive_radius(model) -> int:
    """How far (pixels) a block score cell sees from its centre: sum of ``(k // 2) * stride``."""
    radius, stride = 0, 1
    stem = getattr(model, "stem", None)
    for block in ([stem] if isinstance(stem, torch.nn.Module) else []) + list(model.blocks):
        for m in block.modules():
            if isinstance(m, torch.nn.Conv2d):
                radius += (m.kernel_size[0] // 2) * stride
                stride *= m.stride[0]
    return radius


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _check_inputs(rgb: np.ndarray, method: str) -> np.ndarray:
    """``rgb`` after checking it and ``method``."""
    if method not in CAM_METHODS:
        raise WeaklocError(f"cams: unknown method {method!r} (choose from {', '.join(CAM_METHODS)}; key cams.method)")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise WeaklocError(f"cams: expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return rgb


def runs_tiled(height: int, width: int, max_side: int | None) -> bool:
    """Whether :func:`block_maps` runs an ``height x width`` image in tiles (``cams.max_side``)."""
    return max_side is not None and max(height, width) > int(max_side)


def _tile_layout(model, H: int, W: int, max_side: int | None) -> tuple[list, list]:
    """The tiles of an ``H x W`` image along y and along x (:func:`_tiles`; one each when it fits)."""
    strides, _ = block_strides(model)
    top = strides[-1]
    align = top * 8 // math.gcd(top, 8)
    margin = -(-max(TILE_MARGIN, receptive_radius(model) + 2 * top) // align) * align
    tile = max(H, W) if max_side is None else int(max_side)
    return _tiles(H, tile, align, margin), _tiles(W, tile, align, margin)


def _run_tile(model, x: torch.Tensor, method: str) -> tuple[object, list[torch.Tensor]]:
    """One tile ``x`` ``(1, C, h, w)`` through the model: its output and each block's raw cells.

    The cells of block b are ``(1, 1, ceil(h / s_b), ceil(w / s_b)) float32``: score logits
    (``score``) or the non-normalised Grad-CAM (``gradcam``).
    """
    if method == "score":
        with torch.no_grad():
            out = model(x)
        return out, [s.float() for s in out.score_maps]
    with torch.enable_grad():
        out = model(x)
        grads = torch.autograd.grad(out.logit.sum(), out.features)
    tile_cells = []
    for f, g in zip(out.features, grads, strict=True):
        alpha = g.float().mean(dim=(2, 3), keepdim=True)
        tile_cells.append(torch.relu((alpha * f.detach().float()).sum(dim=1, keepdim=True)))
    return out, tile_cells


@dataclass
class _Stitched:
    """The whole image's per-block values, assembled from the tiles' cores.

    Attributes:
        cells: per block b ``(1, 1, ceil(H / s_b), ceil(W / s_b))`` raw cells.
        feats: per block b ``(1, C_b, ceil(H / s_b), ceil(W / s_b))`` features, kept only when
            the score heads run after stitching (``score_context``); else None.
        feat_sums: per block b ``(C_b,)`` sums of the core features over the cells so far.
    """

    cells: list[torch.Tensor]
    feats: list[torch.Tensor] | None
    feat_sums: list[torch.Tensor] | None = None

    @classmethod
    def empty(cls, model, H: int, W: int, strides: list[int], keep_features: bool) -> _Stitched:
        cells = [torch.zeros(1, 1, -(-H // st), -(-W // st)) for st in strides]
        feats = [torch.zeros(1, c, -(-H // st), -(-W // st)) for c, st in zip(model.widths, strides, strict=True)] \
            if keep_features else None
        return cls(cells, feats)

    def add_tile(self, out, tile_cells: list[torch.Tensor], strides: list[int], origin: tuple[int, int],
                 core: tuple[int, int, int, int]) -> None:
        """Copy the core ``(cy0, cy1, cx0, cx1)`` of a tile starting at ``origin`` ``(y0, x0)``."""
        y0, x0 = origin
        cy0, cy1, cx0, cx1 = core
        sums = []
        for b in range(len(strides)):
            s = strides[b]
            gy0, gy1, gx0, gx1 = cy0 // s, -(-cy1 // s), cx0 // s, -(-cx1 // s)
            ly0, lx0 = gy0 - y0 // s, gx0 - x0 // s
            src = tile_cells[b][..., ly0:ly0 + gy1 - gy0, lx0:lx0 + gx1 - gx0]
            self.cells[b][..., gy0:gy1, gx0:gx1] = src.detach().cpu()
            f = out.features[b].detach()[..., ly0:ly0 + gy1 - gy0, lx0:lx0 + gx1 - gx0].float()
            sums.append(f[0].sum(dim=(1, 2)).cpu())
            if self.feats is not None:
                self.feats[b][..., gy0:gy1, gx0:gx1] = f.cpu()
        self.feat_sums = sums if self.feat_sums is None else [a + c for a, c in zip(self.feat_sums, sums, strict=True)]


def _tiled_outputs(model, meta: dict, rgb: np.ndarray, method: str, max_side: int | None, sel: np.ndarray,
                   st: _Stitched, device: torch.device) -> tuple[float, np.ndarray, np.ndarray, list[torch.Tensor]]:
    """Whole-image ``prob``, ``weights`` ``(B,)``, ``block_probs`` ``(B,)`` and final cells of a tiled pass.

    The statistics come from the stitched tiles (module docstring); with ``score_context`` the
    score heads run here on the stitched features, which gives the final cells.
    """
    cells = st.cells
    with torch.no_grad():
        means = [(fs / (c.shape[-2] * c.shape[-1])).view(1, -1, 1, 1).to(device)
                 for fs, c in zip(st.feat_sums, cells, strict=True)]
        if st.feats is not None:
            cells = [model.score_map(b, f.to(device), m).cpu()
                     for b, (f, m) in enumerate(zip(st.feats, means, strict=True))]
        weights_t = model.attention(means).float()[0].cpu()
        if method == "score":
            block_logits = torch.stack([pool_score_map(c, model.pooling, model.topk_fraction)[0] for c in cells])
            block_probs = torch.sigmoid(block_logits).numpy()
            prob = float(torch.sigmoid((weights_t * block_logits).sum()))
        else:
            # Grad-CAM cells are not logits; pool a score-method pass for the probability.
            bm = block_maps(model, meta, rgb, "score", max_side, sel=sel)
            prob, block_probs = bm.prob, bm.block_probs
        weights = weights_t.numpy()
    return prob, weights, block_probs, cells


def _maps_from_cells(cells: list[torch.Tensor], method: str, strides: list[int], offset: float,
                     size: tuple[int, int]) -> np.ndarray:
    """``(B, H, W) float32`` maps in ``[0, 1]``: sigmoid (``score``) or per-block peak-normalised
    (``gradcam``) cells, upsampled to ``size`` ``(H, W)``.

    Upsampled along the rows first (a map of ``H x ceil(W / stride)``), then along the columns a
    band of rows at a time (:func:`row_chunks`), so no full-size temporary is made besides the
    result; interpolation is elementwise, so the bands equal the whole-map computation.
    """
    H, W = size
    maps = np.empty((len(cells), H, W), dtype=np.float32)
    for b in range(len(cells)):
        c = cells[b]
        if method == "score":
            c = torch.sigmoid(c)
        else:
            peak = float(c.max())
            c = c / peak if peak > 0 else c
        if strides[b] == 1 and offset == 0:
            maps[b] = upsample_cells(c, strides[b], (H, W), offset)[0, 0].clamp_(0.0, 1.0).numpy()
            continue
        rows = _interp_axis(c, -2, H, strides[b], offset)
        for r0, r1 in row_chunks(H, W):
            band = _interp_axis(rows[..., r0:r1, :], -1, W, strides[b], offset)
            maps[b, r0:r1] = band[0, 0].clamp_(0.0, 1.0).numpy()
    return maps


def block_maps(model, meta: dict, rgb: np.ndarray, method: str = "score", max_side: int | None = 2048,
               sel: np.ndarray | None = None) -> BlockMaps:
    """Per-block activation maps of one image.

    Args:
        model: a WCBnet (as returned by ``wcbnet.load_checkpoint``), in eval mode.
        meta: the checkpoint's meta; ``meta["config"]["sel"]`` gives the SEL settings.
        rgb: ``(H, W, 3) uint8`` image.
        method: ``score`` or ``gradcam`` (module docstring).
        max_side: images with a longer side above this run in native-resolution tiles of at
            most ``max_side x max_side`` pixels (None: always whole).
        sel: the image's SEL if it is already computed (``signed_error_level(rgb, ...)`` with
            the checkpoint's ``sel`` settings; ``weakloc localize`` computes it in a worker
            thread for images that run whole); None = computed here: for the whole image, or,
            when the image runs in tiles, per tile (:meth:`weakloc.sel.SelSettings.window`,
            equal to the whole image's SEL on the tile), so the whole image's SEL is never held.

    Returns:
        :class:`BlockMaps` with ``maps`` ``(B, H, W) float32`` in ``[0, 1]``.
    """
    rgb = _check_inputs(rgb, method)
    H, W = rgb.shape[:2]
    if sel is not None and sel.shape[1:] != (H, W):
        raise WeaklocError(f"cams: SEL of shape {sel.shape} does not belong to an image of {(H, W)}")
    tiled = runs_tiled(H, W, max_side)
    per_tile = tiled and sel is None  # the SEL of each tile, computed when the tile runs
    sel_settings = SelSettings.from_section(meta["config"]["sel"]) if sel is None else None
    if sel is None and not per_tile:
        sel = sel_settings.of(rgb)
    strides, offset = block_strides(model)
    ys, xs = _tile_layout(model, H, W, max_side)
    device = _model_device(model)
    x_full = None if per_tile else torch.from_numpy(sel)
    # A score_context head compares each cell with the whole image's mean features, which only
    # exist once every tile has run: keep the stitched features and apply the heads at the end.
    late_heads = tiled and method == "score" and bool(getattr(model, "score_context", False))
    st = _Stitched.empty(model, H, W, strides, late_heads)
    for (y0, y1, cy0, cy1) in ys:
        for (x0, x1, cx0, cx1) in xs:
            if per_tile:
                x = torch.from_numpy(sel_settings.window(rgb, (y0, y1), (x0, x1)))[None]
            else:
                x = x_full[None, :, y0:y1, x0:x1]
            out, tile_cells = _run_tile(model, x.to(device), method)
            del x
            st.add_tile(out, tile_cells, strides, (y0, x0), (cy0, cy1, cx0, cx1))
            if not tiled:
                prob = float(torch.sigmoid(out.logit.detach().float())[0])
                weights = out.block_weights.detach().float()[0].cpu().numpy()
                block_probs = torch.sigmoid(out.block_logits.detach().float())[0].cpu().numpy()
    cells = st.cells
    if tiled:
        prob, weights, block_probs, cells = _tiled_outputs(model, meta, rgb, method, max_side, sel, st, device)
    maps = _maps_from_cells(cells, method, strides, offset, (H, W))
    return BlockMaps(prob=prob, maps=maps, weights=np.asarray(weights, dtype=np.float32),
                     block_probs=np.asarray(block_probs, dtype=np.float32))


# --------------------------------------------------------------------------- the step
# The folder format and its readers: :mod:`weakloc.blockmaps`.


def _write_image_maps(model, meta: dict, row, work: Path, cams_cfg: dict) -> dict:
    """Write one image's ``block{b}/{id}.png`` under ``work``; its ``blocks.csv`` row as a dict."""
    # the detector reads the pixels as stored (a JPEG's own grid); the maps are turned to
    # the displayed orientation, the one masks are drawn on (docs/localization.md)
    stored, orientation = read_rgb_stored(row.image)
    bm = block_maps(model, meta, stored, cams_cfg["method"], cams_cfg["max_side"])
    B = model.n_blocks
    for b in range(B):
        write_prob(orient_array(bm.maps[b], orientation), inside(work / block_variant(b + 1), f"{row.id}.png"))
    return {"id": row.id, "label": int(row.label), "score": round(bm.prob, 6),
            "threshold": round(operating_point(meta)[0], 6),
            **{f"w{b + 1}": round(float(bm.weights[b]), 6) for b in range(B)}}


def write_block_maps(manifest: str | Path, split: str, checkpoint: str | Path, out_dir: str | Path, config: dict,
                     shard: Shard | None = None) -> int:
    """The cams step: every image of a manifest's split (or of its ``shard``) into ``out_dir``.

    Writes ``out_dir/block{b}/{id}.png`` and ``out_dir/blocks.csv`` (format above) with the
    settings of ``config["cams"]`` (``method``, ``max_side``). Resumable: the files go to a
    work folder keyed by the settings, data and checkpoint (:func:`weakloc.io.resumable_dir`);
    a finished image leaves ``.rows/{id}.json``, so a killed run keeps the images it had
    finished, and ``out_dir`` appears complete at the end. Returns the number of images.
    """
    from weakloc.runtime import resolve_device
    from weakloc.wcbnet import load_checkpoint

    cams_cfg = config["cams"]
    df = read_manifest(manifest, split=split)
    if df.empty:
        raise WeaklocError(f"{manifest}: no images in split {split!r}")
    df = shard_items(df, shard)
    model, meta = load_checkpoint(checkpoint, map_location=resolve_device("auto"))
    fingerprint = {"step": "cams", "cams": cams_cfg, "split": split, "data": content_hash(df),
                   "checkpoint": file_sha256(checkpoint), "rows": blocks_csv_columns(model.n_blocks)}
    with resumable_dir(out_dir, fingerprint) as work:
        rows_dir = work / ".rows"  # one JSON row per finished image; blocks.csv is built from them
        done = sum(inside(rows_dir, f"{r}.json").is_file() for r in df["id"])
        if done:
            print(f"cams: resuming, {done} of {len(df)} images already done", file=sys.stderr)
        for row in tqdm(df.itertuples(index=False), total=len(df), desc="cams", unit="img", file=sys.stderr):
            row_file = inside(rows_dir, f"{row.id}.json")
            if row_file.is_file():
                continue
            record = _write_image_maps(model, meta, row, work, cams_cfg)
            with atomic_path(row_file) as tmp:  # last: its presence means the image is complete
                tmp.write_text(json.dumps(record), encoding="utf-8")
        rows = [json.loads(inside(rows_dir, f"{r}.json").read_text(encoding="utf-8")) for r in df["id"]]
        with atomic_path(work / BLOCKS_CSV) as tmp:
            pd.DataFrame(rows, columns=blocks_csv_columns(model.n_blocks)).to_csv(tmp, index=False)
        for f in rows_dir.iterdir():
            f.unlink()
        rows_dir.rmdir()
    return len(df)
