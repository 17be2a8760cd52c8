"""Small things many tests build: a tiny WCBnet config, a random checkpoint, a photo-like image.

Test modules import these instead of importing each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from weakloc.config import validate_config
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
