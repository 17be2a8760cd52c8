"""Preparation: any registered dataset -> ``manifest.csv`` + ``images/`` + ``masks/``.

The output has the same form for every dataset (docs/architecture.md, "Data"):

- ``images/<id>.jpg``: JPEG files copied byte for byte (re-encoding would erase the traces
  the detector reads); any other format is converted losslessly to 8-bit RGB PNG
  (``images/<id>.png``).
- ``masks/<id>.png``: 0/255 PNG at image size; all zero for authentic images; absent
  (empty manifest field) for a manipulated image whose ground truth is unknown.
- ``manifest.csv``: the columns of :mod:`weakloc.manifest`, with a deterministic,
  label-stratified split.

Every sample is checked (readable image, readable mask of the image's size, label agrees
with the mask) and *all* problems are reported together in one :class:`WeaklocError`. The
output folder is built beside ``out_dir`` under a temporary name and renamed at the end, so
an interrupted run leaves nothing half-made.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from weakloc.errors import WeaklocError
from weakloc.io import read_rgb, staged_dir, write_mask
from weakloc.manifest import SPLITS, write_manifest

from .registry import get_dataset
from .spec import RawSample

JPEG_FORMATS = ("JPEG", "MPO")  # MPO: camera JPEGs with extra frames; the bytes are a JPEG file


def _binary(arr: np.ndarray) -> np.ndarray:
    return arr > 127


def _read_mask_array(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
            return np.asarray(img.convert("RGB"))
        return np.asarray(img.convert("L"))


def _gray(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 2 else arr.max(axis=2)


def _columbia(arr: np.ndarray) -> np.ndarray:
    from .public import columbia_mask

    return columbia_mask(arr)


#: How a raw mask file becomes ``(H, W) bool``; input is the file as ``(H, W)`` or ``(H, W, 3) uint8``.
MASK_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "binary": lambda a: _binary(_gray(a)),
    "nonzero": lambda a: _gray(a) > 0,
    "columbia": _columbia,
}


def assign_splits(ids: list[str], labels: list[int], fractions: dict, seed: int) -> list[str]:
    """Label-stratified train/val/test(/holdout) assignment, one entry per id.

    Within each label, ids are ordered by ``sha256(f"{seed}:{id}")``; the first
    ``round(n * train)`` go to train, the next ``round(n * val)`` to val, the next
    ``round(n * holdout)`` to holdout (0 unless ``fractions`` has it), the rest to test.
    The result depends only on the set of (id, label) pairs and the seed, never on row order,
    and adding or removing other ids moves only ids near the boundaries.
    """
    out = [""] * len(ids)
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        idx.sort(key=lambda i: hashlib.sha256(f"{seed}:{ids[i]}".encode()).hexdigest())
        n = len(idx)
        n_train = int(round(n * fractions["train"]))
        n_val = min(n - n_train, int(round(n * fractions["val"])))
        n_holdout = min(n - n_train - n_val, int(round(n * fractions.get("holdout", 0.0))))
        for rank, i in enumerate(idx):
            out[i] = ("train" if rank < n_train else "val" if rank < n_train + n_val
                      else "holdout" if rank < n_train + n_val + n_holdout else "test")
    return out


def _ingest(sample: RawSample, root: Path) -> tuple[dict | None, list[str]]:
    """Copy/convert one raw sample into ``root``; returns its manifest row or its problems."""
    problems: list[str] = []
    try:
        rgb = read_rgb(sample.image)  # raises WeaklocError naming the file
        with Image.open(sample.image) as img:
            fmt = img.format
    except WeaklocError as exc:
        return None, [str(exc)]
    height, width = rgb.shape[:2]

    mask_arr: np.ndarray | None = None
    if sample.mask is not None:
        try:
            raw = _read_mask_array(sample.mask)
            mask_arr = MASK_RULES[sample.mask_rule](raw)
        except FileNotFoundError:
            problems.append(f"{sample.mask}: mask not found (for image {sample.image})")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            problems.append(f"{sample.mask}: unreadable mask ({exc})")
        if mask_arr is not None:
            if mask_arr.shape != (height, width):
                problems.append(f"{sample.mask}: mask is {mask_arr.shape[1]}x{mask_arr.shape[0]} but image "
                                f"{sample.image.name} is {width}x{height}")
            elif sample.label == 1 and not mask_arr.any():
                problems.append(f"{sample.mask}: mask is empty but {sample.image.name} is labelled manipulated")
            elif sample.label == 0 and mask_arr.any():
                problems.append(f"{sample.mask}: mask marks {int(mask_arr.sum())} pixels but "
                                f"{sample.image.name} is labelled authentic")
    if problems:
        return None, problems

    if fmt in JPEG_FORMATS:
        image_out = root / "images" / f"{sample.id}.jpg"
        shutil.copyfile(sample.image, image_out)
    else:
        image_out = root / "images" / f"{sample.id}.png"
        Image.fromarray(rgb, mode="RGB").save(image_out, format="PNG")
    mask_field = ""
    if mask_arr is not None or sample.label == 0:
        mask_out = root / "masks" / f"{sample.id}.png"
        write_mask(mask_arr if mask_arr is not None else np.zeros((height, width), dtype=bool), mask_out)
        mask_field = str(mask_out)
    return {"id": sample.id, "label": int(sample.label), "image": str(image_out), "mask": mask_field,
            "width": int(width), "height": int(height), "source": sample.source}, []


def check_prepared(rows: list[dict]) -> list[str]:
    """Re-read every written image and mask; the problems found (empty when all is well)."""
    problems = []
    for row in rows:
        try:
            with Image.open(row["image"]) as img:
                img.load()
                size = img.size
        except Exception as exc:  # noqa: BLE001 - every failure is a problem to report
            problems.append(f"{row['image']}: unreadable ({exc})")
            continue
        if size != (row["width"], row["height"]):
            problems.append(f"{row['image']}: size {size} differs from the recorded {row['width']}x{row['height']}")
        if row["mask"]:
            with Image.open(row["mask"]) as m:
                arr = np.asarray(m.convert("L")) > 127
            if arr.shape != (row["height"], row["width"]):
                problems.append(f"{row['mask']}: mask size differs from the image's")
            elif bool(arr.any()) != bool(row["label"]):
                problems.append(f"{row['mask']}: mask does not agree with label {row['label']}")
    return problems


def _bad_files_error(name: str, where: Path | str, problems: list[str]) -> WeaklocError:
    head = f"dataset {name}: {len(problems)} problem(s) in {where}; fix or remove these files and rerun:"
    return WeaklocError("\n".join([head] + [f"  {p}" for p in problems]))


def _raw_dir_for(name: str, config: dict, raw_dir: str | Path | None) -> Path:
    if name == "folder":
        path = raw_dir or config["dataset"]["folder"]["path"]
        if not path:
            raise WeaklocError("key dataset.folder.path: required when dataset.name is folder (or pass --raw DIR)")
        return Path(path)
    path = Path(raw_dir) if raw_dir else Path("data/raw") / name
    if not path.is_dir():
        raise WeaklocError(f"{path}: raw dataset folder not found; run "
                           f"`weakloc data download {name} --out {path}` first (see docs/datasets.md)")
    return path


def prepare_dataset(config: dict, out_dir: str | Path, raw_dir: str | Path | None = None,
                    progress: bool = True, photo_pool: str | Path | None = None) -> Path:
    """Prepare ``config["dataset"]["name"]`` into ``out_dir``; returns the manifest's path.

    ``config``: the validated study config (:func:`weakloc.config.validate_config`).
    ``raw_dir``: the downloaded/extracted tree (default ``data/raw/<name>``; for ``folder``
    the default is ``dataset.folder.path``; unused for ``synthetic``). ``photo_pool``: the built
    photo pool of ``dataset.synthetic.photos: debian``. A synthetic set split by photo keeps the
    generator's splits; every other set is split here (:func:`assign_splits`).
    Raises :class:`WeaklocError` listing every bad file when any sample fails its checks.
    """
    from tqdm import tqdm

    ds = config["dataset"]
    name = ds["name"]
    spec = get_dataset(name)
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as staged:
        tmp = staged.resolve()
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        if name == "synthetic":
            from .synthetic import generate_synthetic

            rows = generate_synthetic(config, tmp, progress=progress, pool_dir=photo_pool)
            where: Path | str = "the synthetic generator"
            problems = check_prepared(rows)
        else:
            where = _raw_dir_for(name, config, raw_dir)
            samples = spec.collect(where, config)
            if not samples:
                raise WeaklocError(f"{where}: no {name} images found (expected layout: see docs/datasets.md)")
            problems = []
            seen: dict[str, RawSample] = {}
            for smp in samples:
                if smp.id in seen:
                    problems.append(f"{smp.image}: same id {smp.id!r} as {seen[smp.id].image} (rename one of them)")
                else:
                    seen[smp.id] = smp
            rows = []
            for smp in tqdm(list(seen.values()), desc=f"prepare {name}", unit="img", disable=not progress):
                row, bad = _ingest(smp, tmp)
                problems.extend(bad)
                if row is not None:
                    rows.append(row)
        if problems:
            raise _bad_files_error(name, where, problems)
        rows.sort(key=lambda r: r["id"])
        df = pd.DataFrame(rows)
        if "split" not in df.columns:
            df["split"] = assign_splits(list(df["id"]), [int(v) for v in df["label"]], ds["splits"], int(ds["seed"]))
        assert set(df["split"]) <= set(SPLITS)
        write_manifest(df, tmp / "manifest.csv")
    return out_dir / "manifest.csv"
