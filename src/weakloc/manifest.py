"""The manifest: one CSV row per prepared sample, the contract between data and every step.

Columns: ``id, split, label, image, mask, width, height, source``.

- ``id``: unique, filename-safe; every per-image output is named ``<id>.<ext>``.
- ``split``: ``train``, ``val``, ``test`` or ``holdout`` (test images scored at image level only:
  detection reads ``test`` and ``holdout``, the localization steps ``test``).
- ``label``: 0 authentic, 1 manipulated.
- ``image``, ``mask``: paths relative to the manifest's folder. Authentic images have an
  all-zero mask; ``mask`` is empty where the ground truth is unknown (a user's folder).
- ``width``, ``height``: the image's size; the mask has the same size.
- ``source``: where the sample came from (original file name, or the synthetic recipe).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, file_sha256

COLUMNS = ["id", "split", "label", "image", "mask", "width", "height", "source"]
SPLITS = ("train", "val", "test", "holdout")
#: The splits image-level detection is scored on (the localization steps read ``test`` only).
DETECTION_SPLITS = ("test", "holdout")


#: A manifest id becomes a file name (``<id>.png``): letters, digits, ``_``, ``-`` and inner dots.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def read_manifest(path: str | Path, split: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate a manifest; ``image`` and ``mask`` become absolute paths (``mask`` "" if unknown).

    ``split`` keeps only that split (or those splits). Rows keep the file's order. Every check of a manifest
    lives here, and each failure is one :class:`WeaklocError` line naming the file and the
    row (its line number in the CSV): a readable CSV with every column; ids that are safe as
    file names (:data:`ID_PATTERN`: no ``/``, no leading dot) and unique; labels 0 or 1;
    splits among :data:`SPLITS`; an image path on every row.
    """
    path = Path(path)
    wanted = (split,) if isinstance(split, str) else (tuple(split) if split is not None else None)
    for name in wanted or ():
        if name not in SPLITS:
            raise WeaklocError(f"unknown split {name!r} (choose from {', '.join(SPLITS)})")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: manifest not found (prepare the dataset first)") from None
    except IsADirectoryError:
        raise WeaklocError(f"{path}: is a folder, not a manifest CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise WeaklocError(f"{path}: not a readable manifest CSV ({reason})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise WeaklocError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    _validate_rows(path, df)
    root = path.resolve().parent
    df["image"] = [str(root / p) for p in df["image"]]
    df["mask"] = [str(root / p) if p else "" for p in df["mask"]]
    df["label"] = df["label"].astype(int)
    for col in ("width", "height"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int)
    if wanted is not None:
        df = df[df["split"].isin(wanted)].reset_index(drop=True)
    return df


def _validate_rows(path: Path, df: pd.DataFrame) -> None:
    """One error line naming ``path`` and the CSV line of the first bad row."""
    seen: dict[str, int] = {}
    for i, row in enumerate(df.itertuples(index=False)):
        where = f"{path}: line {i + 2}"  # line 1 is the header
        if not ID_PATTERN.fullmatch(row.id):
            raise WeaklocError(f"{where}: id {row.id!r} is not safe as a file name (letters, digits, '_', '-' "
                               "and inner dots only; no '/', no leading dot, at most 200 characters)")
        if row.id in seen:
            raise WeaklocError(f"{where}: duplicate id {row.id!r} (first on line {seen[row.id]})")
        seen[row.id] = i + 2
        if row.label not in ("0", "1"):
            raise WeaklocError(f"{where}: label {row.label!r} is not 0 (authentic) or 1 (manipulated)")
        if row.split not in SPLITS:
            raise WeaklocError(f"{where}: unknown split {row.split!r} (choose from {', '.join(SPLITS)})")
        if not row.image:
            raise WeaklocError(f"{where}: empty image path")


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


def manipulated_with_masks(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` with ``label == 1`` and a known mask (the ones pixel metrics score)."""
    return df[(df["label"] == 1) & (df["mask"] != "")]


def masked_rows(manifest: str | Path, split: str, purpose: str = "") -> pd.DataFrame:
    """:func:`manipulated_with_masks` of a manifest's ``split``; a :class:`WeaklocError` naming the
    manifest when there is none (``purpose`` ends the message, e.g. ``" to perturb"``)."""
    rows = manipulated_with_masks(read_manifest(manifest, split=split))
    if rows.empty:
        raise WeaklocError(f"{manifest}: no manipulated image with a mask in split {split!r}{purpose}")
    return rows


def content_hash(df: pd.DataFrame, columns: tuple[str, ...] = ("id", "split", "label")) -> str:
    """sha256 over ``df``'s ``columns`` and the bytes of every ``image`` file, row by row.

    What a step's output depends on in the data: the ids, splits and labels *and* the pixels.
    Two datasets with the same ids but other images (another ``dataset.synthetic.size``, a
    regenerated set) hash differently. Only the ``image`` files are read, never the masks, so
    it is safe to key training state with it (training must not read masks).
    """
    h = hashlib.sha256()
    for row in df[list(columns) + ["image"]].itertuples(index=False):
        *fields, image = row
        h.update("\x1f".join(map(str, fields)).encode())
        h.update(file_sha256(image).encode())
        h.update(b"\x1e")
    return h.hexdigest()
