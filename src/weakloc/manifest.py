"""The manifest: one CSV row per prepared sample, the contract between data and every step.

Columns: ``id, split, label, image, mask, width, height, source``.

- ``id``: unique, filename-safe; every per-image output is named ``<id>.<ext>``.
- ``split``: ``train``, ``val`` or ``test``.
- ``label``: 0 authentic, 1 manipulated.
- ``image``, ``mask``: paths relative to the manifest's folder. Authentic images have an
  all-zero mask; ``mask`` is empty where the ground truth is unknown (a user's folder).
- ``width``, ``height``: the image's size; the mask has the same size.
- ``source``: where the sample came from (original file name, or the synthetic recipe).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path

COLUMNS = ["id", "split", "label", "image", "mask", "width", "height", "source"]
SPLITS = ("train", "val", "test")


def read_manifest(path: str | Path, split: str | None = None) -> pd.DataFrame:
    """Read a manifest; ``image`` and ``mask`` become absolute paths (``mask`` "" if unknown).

    ``split`` keeps only that split. Rows keep the file's order.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"id": str, "split": str, "image": str, "mask": str, "source": str},
                         keep_default_na=False)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: manifest not found (prepare the dataset first)") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise WeaklocError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    root = path.resolve().parent
    df["image"] = [str(root / p) for p in df["image"]]
    df["mask"] = [str(root / p) if p else "" for p in df["mask"]]
    df["label"] = df["label"].astype(int)
    if split is not None:
        if split not in SPLITS:
            raise WeaklocError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
        df = df[df["split"] == split].reset_index(drop=True)
    return df


def write_manifest(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` atomically, its paths made relative to ``path``'s folder.

    ``image`` and ``mask`` in ``df`` are absolute, or already relative to the manifest's
    folder. On disk they are always relative to the manifest, so a prepared dataset folder
    can be moved or restored elsewhere (``dvc pull``) as a whole.
    """
    path = Path(path)
    root = path.resolve().parent

    def rel(p: str) -> str:
        if not p:
            return ""
        return os.path.relpath(p, root) if Path(p).is_absolute() else p

    out = df[COLUMNS].copy()

    out["image"] = [rel(p) for p in out["image"]]
    out["mask"] = [rel(p) for p in out["mask"]]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
