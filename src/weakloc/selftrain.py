"""Self-training [ours]: a student WCBnet fine-tuned end to end on its teacher's pseudo-masks.

The route from activation maps to masks of weakly-supervised segmentation (issue 9, item 2),
with image labels still the only labels. Round ``r`` (1 .. ``selftrain.rounds``) of seed ``s``
has two workflow steps (``workflow/rules/selftrain.smk``); round 1's teacher is the trained
WCBnet ``checkpoints/<dataset>/seed<s>/wcbnet.pt``, round r's the student of round r - 1:

1. **Pseudo-masks** (``weakloc pseudo-masks``, :func:`write_pseudo_masks`) of the TRAIN split
   (all of it, or a seeded class-balanced subset of ``selftrain.max_images``): the teacher's
   own pipeline on each image as stored (the SEL's coordinates), :class:`weakloc.pipeline.Localizer`:
   block maps (``cams``), the first ``fusion.methods``, the partition of ``selftrain.segmenter``
   (computed here) and the ``refine`` section as configured, its decision rule included.
   Three-way pixel labels (:data:`weakloc.training.PIXEL_IGNORE`,
   ``PIXEL_BACKGROUND``, ``PIXEL_FOREGROUND``; :func:`pseudo_label`): an authentic image is
   background everywhere (an exact label, free); a manipulated one is foreground inside the
   teacher's mask, background outside it where the fused map is below the image's median
   (``selftrain.background: median``) or everywhere outside it (``outside``), and ignored
   elsewhere and on a ring of ``selftrain.ring`` pixels on both sides of the mask's border.
2. **Fine-tuning** (``weakloc self-train``, :func:`self_train`): :func:`weakloc.training.train_wcbnet`
   with a :class:`weakloc.training.Student`: every parameter starts from the teacher's and is
   trained, on the pseudo-labelled images, with the training loss plus ``selftrain.pixel_weight``
   x :class:`weakloc.training.PixelLoss` (each block's score map against the pixel labels).
   The ``train`` section's settings hold, except ``epochs`` = ``selftrain.epochs`` and the
   learning rate = ``selftrain.lr_scale`` x ``train.lr``; model selection on validation AUC,
   resume after every epoch and determinism are training's.

The student's maps are then made and scored by the same steps as the teacher's, under the
study root ``<dataset>/st<r>`` (:mod:`weakloc.layout`); the tables' self-training ablation
compares them.

**No ground-truth mask is read.** :func:`write_pseudo_masks` drops the manifest's ``mask``
column as soon as it is read; training never opens a mask (:mod:`weakloc.training`);
``tests/test_selftrain.py`` records every file both steps open.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, file_sha256, inside, read_rgb_stored, resumable_dir
from weakloc.manifest import content_hash, read_manifest
from weakloc.training import PIXEL_BACKGROUND, PIXEL_FOREGROUND, PIXEL_IGNORE, PixelLoss, Student, train_wcbnet

#: The pseudo-mask folder's index: one row per pseudo-labelled training image.
INDEX = "pseudo.csv"
INDEX_COLUMNS = ["id", "label", "foreground", "background", "ignore"]


def pseudo_label(coarse: np.ndarray, mask: np.ndarray, label: int, ring: int, background: str) -> np.ndarray:
    """``(H, W) uint8`` pixel labels of one training image (module docstring, step 1).

    ``coarse``: the teacher's fused map; ``mask``: its decision (the refined map > 0.5);
    ``label``: the image label. A manipulated image with an empty mask keeps the median rule
    for its background and has no foreground.
    """
    out = np.full(coarse.shape, PIXEL_IGNORE, dtype=np.uint8)
    if int(label) == 0:
        out[:] = PIXEL_BACKGROUND
        return out
    if background == "outside" and mask.any():
        out[~mask] = PIXEL_BACKGROUND
    else:
        out[(~mask) & (coarse < np.median(coarse))] = PIXEL_BACKGROUND
    out[mask] = PIXEL_FOREGROUND
    if ring > 0 and mask.any():
        cross = ndimage.generate_binary_structure(2, 1)
        outer = ndimage.binary_dilation(mask, cross, iterations=ring)
        inner = ndimage.binary_erosion(mask, cross, iterations=ring, border_value=1)
        out[outer & ~inner] = PIXEL_IGNORE
    return out


def balanced_subset(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n // 2`` rows of each label (all of a label that has fewer), drawn by ``rng``, in manifest order."""
    parts = []
    for label in (0, 1):
        group = df[df["label"] == label]
        take = min(n // 2, len(group))
        parts.append(group.iloc[np.sort(rng.choice(len(group), size=take, replace=False))])
    return pd.concat(parts).sort_index().reset_index(drop=True)


def pseudo_rows(manifest: str | Path, max_images: int | None, seed: int) -> pd.DataFrame:
    """The train rows to pseudo-label, WITHOUT their ``mask`` column: all, or a
    :func:`balanced_subset` of ``max_images`` drawn by ``seed``, in manifest order."""
    df = read_manifest(manifest, split="train").drop(columns=["mask"])  # never a training mask
    if df.empty:
        raise WeaklocError(f"{manifest}: no rows with split 'train' to pseudo-label")
    if max_images is None or max_images >= len(df):
        return df.reset_index(drop=True)
    return balanced_subset(df, max_images, np.random.default_rng([int(seed), 104729]))


def teacher_labels(stored: np.ndarray, label: int, teacher) -> np.ndarray:
    """One training image's pixel labels from the teacher's pipeline (``teacher``: a
    :class:`weakloc.pipeline.Localizer` with the self-training segmenter; ``stored``: pixels as
    stored). The coarse map is taken in 8 bits, as the fuse step writes it."""
    from dataclasses import replace

    from weakloc.io import quantize_prob

    det = teacher.detect(stored)
    det = replace(det, coarse=quantize_prob(det.coarse))
    refined = teacher.finish(stored, det).prob
    return pseudo_label(det.coarse, refined > 0.5, label, int(teacher.config["selftrain"]["ring"]),
                        teacher.config["selftrain"]["background"])


def _fingerprint(config: dict, rows: pd.DataFrame, checkpoint: str | Path, seed: int) -> dict:
    """Everything the pseudo-masks depend on (the resumable work folder's key)."""
    st = config["selftrain"]
    return {"step": "pseudo-masks", "cams": config["cams"], "fusion": config["fusion"]["methods"][0],
            "wavelet": config["fusion"]["wavelet"], "refine": config["refine"],
            "segmenter": {st["segmenter"]: config["segmenters"][st["segmenter"]]},
            "selftrain": {k: st[k] for k in ("segmenter", "ring", "background", "max_images")}, "seed": int(seed),
            "data": content_hash(rows), "checkpoint": file_sha256(checkpoint)}


def write_pseudo_masks(manifest: str | Path, checkpoint: str | Path, out_dir: str | Path, config: dict,
                       seed: int) -> int:
    """The pseudo-masks step: ``out_dir/{id}.png`` (``uint8`` pixel labels 0/1/2) and ``out_dir/pseudo.csv``.

    ``pseudo.csv`` has one row per image: ``id, label`` and the ``foreground``, ``background``
    and ``ignore`` fractions of its pixels. Resumable like the cams step (a killed run keeps
    the images it finished; :func:`weakloc.io.resumable_dir`, keyed by the settings, the rows'
    image bytes and the teacher). Returns the number of images.
    """
    from weakloc.pipeline import Localizer
    from weakloc.runtime import resolve_device
    from weakloc.wcbnet import load_checkpoint

    st = config["selftrain"]
    rows = pseudo_rows(manifest, st["max_images"], seed)
    model, meta = load_checkpoint(checkpoint, map_location=resolve_device("auto"))
    teacher = Localizer.from_model(model, meta, config, segmenters=[st["segmenter"]], checkpoint=checkpoint)
    with resumable_dir(out_dir, _fingerprint(config, rows, checkpoint, seed)) as work:
        done = sum(inside(work, f"{i}.png").is_file() for i in rows["id"])
        if done:
            print(f"pseudo-masks: resuming, {done} of {len(rows)} images already done", file=sys.stderr)
        for row in tqdm(rows.itertuples(index=False), total=len(rows), desc="pseudo-masks", unit="img",
                        file=sys.stderr):
            target = inside(work, f"{row.id}.png")
            if target.is_file():
                continue
            stored, _ = read_rgb_stored(row.image)
            labels = teacher_labels(stored, int(row.label), teacher)
            with atomic_path(target) as tmp:
                Image.fromarray(labels).save(tmp, format="PNG")
        index = [{"id": row.id, "label": int(row.label), **_fractions(_read_labels(inside(work, f"{row.id}.png")))}
                 for row in rows.itertuples()]
        with atomic_path(work / INDEX) as tmp:
            pd.DataFrame(index, columns=INDEX_COLUMNS).to_csv(tmp, index=False, float_format="%.6g")
    return len(rows)


def _read_labels(path: Path) -> np.ndarray:
    """A pseudo-mask file's pixel labels, checked: a 2-D ``uint8`` map of 0, 1 and 2."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise WeaklocError(f"{path}: unreadable pseudo-mask ({exc.__class__.__name__})") from None
    if arr.ndim != 2 or arr.dtype != np.uint8 or int(arr.max(initial=0)) > PIXEL_FOREGROUND:
        raise WeaklocError(f"{path}: not a pseudo-mask (expected a 2-D uint8 PNG of values 0, 1, 2)")
    return arr


def _fractions(labels: np.ndarray) -> dict[str, float]:
    return {name: float(np.mean(labels == value)) for name, value in
            (("foreground", PIXEL_FOREGROUND), ("background", PIXEL_BACKGROUND), ("ignore", PIXEL_IGNORE))}


def read_pseudo_masks(pseudo_dir: str | Path) -> tuple[dict[str, np.ndarray], str]:
    """The pixel labels of a pseudo-masks folder by id, and a sha256 of the folder's content."""
    from weakloc.tables import read_csv_file

    pseudo_dir = Path(pseudo_dir)
    index = read_csv_file(pseudo_dir / INDEX, INDEX_COLUMNS, "pseudo-mask index", dtype={"id": str})
    digest = hashlib.sha256(file_sha256(pseudo_dir / INDEX).encode())
    labels = {}
    for image_id in index["id"]:
        path = inside(pseudo_dir, f"{image_id}.png")
        digest.update(file_sha256(path).encode())
        labels[image_id] = _read_labels(path)
    return labels, digest.hexdigest()


def student_config(config: dict) -> dict:
    """The config the student is trained with: ``train.epochs`` and ``train.lr`` from ``selftrain``."""
    out = copy.deepcopy(config)
    st = config["selftrain"]
    out["train"].update(epochs=int(st["epochs"]), lr=float(st["lr_scale"]) * float(config["train"]["lr"]))
    return out


def self_train(manifest: str | Path, teacher: str | Path, pseudo_dir: str | Path, config: dict, seed: int,
               out_path: str | Path, log_csv: str | Path) -> dict:
    """The self-train step: fine-tune ``teacher`` on the pseudo-masks of ``pseudo_dir`` (module docstring).

    ``config``: the validated config (``sel``, ``model``, ``train``, ``selftrain`` read); the
    teacher's ``sel`` and ``model`` sections must be the config's. Writes the student like
    ``weakloc train`` writes a model (best validation-AUC epoch, per-epoch log, resume state
    beside the checkpoint); its ``meta["self_training"]`` names the teacher and the pseudo-masks.
    Returns :func:`weakloc.training.train_wcbnet`'s summary.
    """
    from weakloc.cams import block_strides
    from weakloc.wcbnet import load_checkpoint, model_sections

    model, meta = load_checkpoint(teacher)
    if meta["config"] != model_sections(config):
        raise WeaklocError(f"{teacher}: the teacher's sel/model sections differ from the config's "
                           "(a student keeps its teacher's architecture and SEL)")
    labels, pseudo_sha = read_pseudo_masks(pseudo_dir)
    strides, offset = block_strides(model)
    st = config["selftrain"]
    teacher_sha = file_sha256(teacher)
    note = {"teacher": str(teacher), "teacher_sha256": teacher_sha, "pseudo_masks": str(pseudo_dir),
            "pseudo_masks_sha256": pseudo_sha, "n_images": len(labels),
            "settings": {k: st[k] for k in sorted(st) if k != "rounds"}}
    fingerprint = hashlib.sha256(json.dumps({"teacher": teacher_sha, "pseudo": pseudo_sha,
                                             "pixel_weight": st["pixel_weight"]}, sort_keys=True).encode()).hexdigest()
    lineage = [*meta.get("self_training", []), note]
    student = Student(model.state_dict(), labels, PixelLoss(float(st["pixel_weight"]), tuple(strides), float(offset)),
                      fingerprint, {"self_training": lineage, "pipeline": meta.get("pipeline")})
    return train_wcbnet(manifest, student_config(config), seed, out_path, log_csv, student)
