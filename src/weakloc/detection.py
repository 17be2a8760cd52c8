"""Image-level detection with a trained WCBnet.

Images are scored at full resolution (never resized or cropped): the SEL of the whole
image goes through the network, and images of equal size share a batch. The score is the
probability ``sigmoid(image logit)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from weakloc.errors import WeaklocError
from weakloc.intervals import BootstrapSettings, detection_intervals
from weakloc.io import atomic_path, read_rgb, write_text_atomic
from weakloc.manifest import read_manifest
from weakloc.metrics import image_metrics
from weakloc.runtime import autocast_dtype, image_logits, resolve_device, size_batches
from weakloc.sel import SelSettings
from weakloc.wcbnet import WCBnet, load_checkpoint


def _header_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image as stored, from its header; ``(0, 0)`` if unreadable.

    Images are scored as stored (``read_rgb(orient=False)``): the detector reads a JPEG on its
    own compression grid, and an image-level score needs no EXIF rotation.
    """
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, ValueError):
        return (0, 0)  # read_rgb reports the problem with the file's name
    return (h, w)


def score_images(model: WCBnet, meta: dict, paths: list[str | Path], batch_size: int = 8,
                 device: str = "auto", progress: bool = True) -> np.ndarray:
    """Manipulation probabilities of image files.

    Args:
        model: a WCBnet (from :func:`weakloc.wcbnet.load_checkpoint`).
        meta: the checkpoint's ``meta``; its ``config["sel"]`` defines the SEL.
        paths: N image files.
        batch_size: images of equal size scored together (at most this many).
        device: ``auto`` | ``cpu`` | ``cuda``.

    Returns:
        ``(N,) float64`` in [0, 1], in the order of ``paths``.
    """
    sel = SelSettings.from_section(meta["config"]["sel"])
    dev = resolve_device(device, "train.device")
    amp = autocast_dtype(dev)
    model = model.to(dev).to(memory_format=torch.channels_last).eval()
    paths = [Path(p) for p in paths]
    # Sizes from the file headers, so that only one batch of SELs is in memory at a time.
    # (A wrong guess only costs batching: image_logits regroups by the SELs' real sizes.)
    shapes = [_header_size(p) for p in paths]
    probs = np.zeros(len(paths), dtype=np.float64)
    batches = size_batches(shapes, batch_size)
    for batch in tqdm(batches, desc="detect", file=sys.stderr, disable=not progress):
        sels = [sel.of(read_rgb(paths[i], orient=False))
                for i in batch]
        logits = image_logits(model, sels, dev, batch_size=batch_size, amp=amp)
        probs[batch] = 1.0 / (1.0 + np.exp(-logits))
    return probs


def detect(manifest_path: str | Path, checkpoint: str | Path, split: str | Sequence[str], scores_csv: str | Path,
           metrics_json: str | Path, threshold: float = 0.5, device: str = "auto",
           bootstrap: BootstrapSettings | None = None) -> dict:
    """Score the manifest's ``split`` (one split or several, e.g. :data:`weakloc.manifest.DETECTION_SPLITS`)
    and write ``scores_csv`` and ``metrics_json``.

    ``scores_csv`` has columns ``id,label,score`` (score = probability in [0, 1]);
    ``metrics_json`` is :func:`weakloc.metrics.image_metrics` at ``threshold`` plus the
    checkpoint's ``epoch`` and ``val_auc``; with ``bootstrap``, ``interval``
    (:func:`weakloc.intervals.detection_intervals`) and the settings as ``bootstrap``.
    Returns the metrics dict.
    """
    splits = (split,) if isinstance(split, str) else tuple(split)
    df = read_manifest(manifest_path, split=splits)
    if df.empty:
        raise WeaklocError(f"{manifest_path}: no rows with split {' or '.join(splits)}")
    split = "+".join(s for s in splits if s in set(df["split"]))  # the splits scored, as metrics name them
    model, meta = load_checkpoint(checkpoint)
    scores = score_images(model, meta, df["image"].tolist(), device=device)
    out = pd.DataFrame({"id": df["id"], "label": df["label"].astype(int), "score": scores})
    with atomic_path(scores_csv) as tmp:
        out.to_csv(tmp, index=False, float_format="%.6f")
    metrics = image_metrics(out["label"].to_numpy(), out["score"].to_numpy(), threshold=threshold)
    metrics = dict(metrics)
    if bootstrap is not None:
        metrics["interval"] = detection_intervals(out["label"].to_numpy(), out["score"].to_numpy(), threshold,
                                                  bootstrap)
        metrics["bootstrap"] = bootstrap.describe()
    metrics.update({"split": split, "checkpoint_epoch": meta.get("epoch"), "checkpoint_val_auc": meta.get("val_auc"),
                    "training_stop": meta.get("stop_reason")})
    write_text_atomic(metrics_json, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics

