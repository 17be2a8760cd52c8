"""The folder ``weakloc cams`` writes, and its readers: no torch here, so the steps that only
read block maps (fuse, refine, the peer rules) start without importing it.

``DIR/block{b}/{id}.png`` (b = 1..B, 8-bit maps, :func:`weakloc.io.write_prob`) and
``DIR/blocks.csv`` with one row per image in manifest order: ``id,label,score,threshold,w1..wB``
(score: the image probability; threshold: the checkpoint's operating point, the verdict is
``score > threshold``, :mod:`weakloc.operating_point`; w_b: the block weights; rounded to 6
decimals). Folders written before 2026-12-06 have no ``threshold`` column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from weakloc.errors import WeaklocError
from weakloc.io import read_prob
from weakloc.layout import block_variant

BLOCKS_CSV = "blocks.csv"


def blocks_csv_columns(n_blocks: int) -> list[str]:
    """The columns of ``blocks.csv`` for a model of ``n_blocks`` blocks: ``id,label,score,threshold,w1..wB``."""
    return ["id", "label", "score", "threshold"] + [f"w{b + 1}" for b in range(n_blocks)]


def image_threshold(row: dict, cams_dir: str | Path) -> float | None:
    """The checkpoint's operating point recorded in a ``blocks.csv`` row (None in an older folder)."""
    value = row.get("threshold")
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise WeaklocError(f"{Path(cams_dir) / BLOCKS_CSV}: threshold {value!r} of {row.get('id')} "
                           "is not a number") from None


def read_blocks_csv(cams_dir: str | Path) -> pd.DataFrame:
    """``cams_dir/blocks.csv`` as a DataFrame (ids as strings), checked for ``id``, ``score`` and ``w1..wB``."""
    path = Path(cams_dir) / BLOCKS_CSV
    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: not found (run `weakloc cams` first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise WeaklocError(f"{path}: not a readable CSV ({exc})") from None
    if "id" not in df.columns or "score" not in df.columns or not weight_columns(df):
        raise WeaklocError(f"{path}: needs columns id, score and w1..wB, has {', '.join(df.columns)}")
    return df


def weight_columns(df: pd.DataFrame) -> list[str]:
    """The block-weight columns of a ``blocks.csv`` table in block order: ``["w1", ..., "wB"]``."""
    return sorted((c for c in df.columns if c.startswith("w") and c[1:].isdigit()), key=lambda c: int(c[1:]))


def read_block_maps(cams_dir: str | Path, image_id: str, n_blocks: int) -> np.ndarray:
    """The stored maps ``block1..blockB/{image_id}.png`` of a cams folder as ``(B, H, W) float32`` in ``[0, 1]``."""
    cams_dir = Path(cams_dir)
    return np.stack([read_prob(cams_dir / block_variant(b) / f"{image_id}.png") for b in range(1, n_blocks + 1)])
