"""Small things many tests build: tiny configs, a random checkpoint, a photo-like image, a toy
dataset, fake score files, and spies on training.

Test modules import these instead of importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from weakloc.config import validate_config
from weakloc.manifest import write_manifest
from weakloc.wcbnet import build_wcbnet, save_checkpoint

#: The smallest WCBnet the tests use: three blocks of 4, 8 and 8 channels.
TINY_MODEL = {"widths": [4, 8, 8], "token_dim": 8}


def tiny_model_config(**sections) -> dict:
    """A validated config with the tiny model and the given sections."""
    return validate_config({"model": dict(TINY_MODEL), **sections})


def random_checkpoint(path: str | Path, extra: dict | None = None, seed: int = 0) -> Path:
    """A checkpoint of an untrained tiny WCBnet (``torch.manual_seed(seed)``) at ``path``; ``extra``
    goes into its meta (e.g. ``{"image_threshold": {...}}``)."""
    torch.manual_seed(seed)
    cfg = tiny_model_config()
    save_checkpoint(path, build_wcbnet(cfg), cfg, extra)
    return Path(path)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An ``(h, w, 3) uint8`` image with gradients and noise (something for segmenters to split)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- training

def make_toy_dataset(root: Path, n_per_class: int = 12, size: int = 48, seed: int = 0) -> Path:
    """A tiny forgery task: authentic = one JPEG at q=70; manipulated = the same kind of image
    with a square pasted from an uncompressed (noisy) source, so its SEL differs there.

    The masks are real files here; ``test_masks_are_never_read`` removes them.
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for i in range(2 * n_per_class):
        label = i % 2
        base = rng.normal(128, 30, (size // 8, size // 8, 3))
        img = np.asarray(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
        buf = root / "tmp.jpg"
        Image.fromarray(img).save(buf, quality=70)
        img = np.asarray(Image.open(buf).convert("RGB")).copy()
        mask = np.zeros((size, size), bool)
        if label:
            s = size // 2
            y, x = rng.integers(0, size - s, 2)
            img[y:y + s, x:x + s] = np.clip(rng.normal(128, 40, (s, s, 3)), 0, 255).astype(np.uint8)
            mask[y:y + s, x:x + s] = True
        ident = f"toy{i:03d}"
        Image.fromarray(img).save(root / "images" / f"{ident}.png")
        mpath = root / "masks" / f"{ident}.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(mpath)
        split = ["train", "train", "train", "val", "test"][(i // 2) % 5] if i >= 4 else ("train" if i < 2 else "val")
        rows.append({"id": ident, "split": split, "label": label, "image": f"images/{ident}.png",
                     "mask": f"masks/{ident}.png", "width": size, "height": size, "source": "toy"})
    buf.unlink()
    df = pd.DataFrame(rows)
    write_manifest(df, root / "manifest.csv")
    return root / "manifest.csv"


TINY = {"sel": {"qualities": [90]},
        "model": {"widths": [8, 16], "token_dim": 8},
        "train": {"epochs": 4, "batch_size": 8, "crop_size": 32, "lr": 0.01, "patience": 10, "threads": 1}}


def tiny_config(**train):
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["train"].update(train)
    return validate_config(cfg)


def record_opened_files(monkeypatch) -> list[str]:
    """The list every file opened from now on (``open``, ``PIL.Image.open``) is appended to, until
    ``monkeypatch.undo()``."""
    import builtins

    import PIL.Image

    opened = []
    real_open, real_image_open = builtins.open, PIL.Image.open

    def spy_open(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    def spy_image_open(fp, *a, **k):
        opened.append(str(getattr(fp, "name", fp)))
        return real_image_open(fp, *a, **k)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(PIL.Image, "open", spy_image_open)
    return opened


def kill_epoch(monkeypatch, n: int) -> None:
    """Make training's epoch ``n`` (counted from now) raise KeyboardInterrupt, as a killed job would."""
    import weakloc.training as training

    real_epoch, calls = training._epoch, {"n": 0}

    def dying_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "_epoch", dying_epoch)


# --------------------------------------------------------------------------- tables

KEYS = ("f1", "iou", "mcc", "auc", "best_f1")


def score_json(base: float, n_missing: int = 0) -> dict:
    vals = {k: round(base + 0.01 * i, 4) for i, k in enumerate(KEYS)}
    return {**vals, "n_images": 12, "n_missing": n_missing, "n_empty_gt": 0, "auc_excluded": 0,
            "threshold": 0.5, "dataset_level": {k: v + 0.1 for k, v in vals.items()},
            "threshold_curve": {"thresholds": [0.0, 0.5, 1.0], "f1": [0.1, base, 0.0]}}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
