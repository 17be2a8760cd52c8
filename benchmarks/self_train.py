"""Self-training prototype: does an end-to-end fine-tuned WCBnet beat its teacher? (issue 9, item 2)

A PROTOTYPE BENCHMARK, not part of the pipeline, the workflow or the tests. The workflow's
self-training (``selftrain.rounds``; :mod:`weakloc.selftrain`) was built after it with the same
pseudo-labels (:func:`weakloc.selftrain.pseudo_label`) and pixel loss
(:class:`weakloc.training.PixelLoss`); it differs in using every train image, training's own
schedule (one warm-up epoch) and model selection on validation AUC. This script stays as the
quick val-split comparison of four pipeline variants per round. Per round r (1..R):

1. **Pseudo-masks** for a seeded, class-balanced subset of the TRAIN split (``--n-train``
   images, half of each label) from the teacher's pipeline: block maps (``cams.method``), the
   config's first fusion method, SLIC (``segmenters.slic``) and the ``refine`` section with
   ``decision.rule: calibrated`` (``weakloc.refinement.refine_with_config``), maps quantised
   to 8 bits as the pipeline writes them. Three-way pixel labels: **foreground** = the
   calibrated mask; **background** = outside the mask and the coarse (fused) map below the
   image's median; **ignore** = the rest plus a ring of ``--ring`` pixels on both sides of
   the mask's border. Authentic images (label 0): every pixel background (exact, free). A
   manipulated image with an empty calibrated mask gets background where the coarse map is
   below its median and ignore elsewhere. (``--background outside``, an alternative: every
   pixel outside a non-empty mask and its ring is background, so the student is also told to
   drop the teacher's halo around the mask.)
2. **Fine-tuning of the whole network** (every parameter, BatchNorm in training mode, as
   ``weakloc train`` does) for ``--epochs`` on those images: ``weakloc.training.wcbnet_loss``
   (image BCE + ``train.block_loss_weight`` x block BCE, so the image-level head stays
   trained) plus ``--pixel-weight`` x the masked BCE between every block's score-map logits,
   upsampled to the crop exactly as ``weakloc.cams`` places its cells
   (``weakloc.cams.upsample_cells``), and the pseudo-labels (ignore pixels excluded; mean over
   the blocks). Crops and flips are ``weakloc.training.grid_crop`` (16-px JPEG grid,
   ``train.crop_size``) applied to the SEL and its pseudo-label map stacked together, so both
   get the identical crop and flip; epochs are ``weakloc.training.balanced_epoch_plan``.
   AdamW at ``--lr-scale`` x ``train.lr`` (default 0.1x), linear warm-up over the first 5 %
   of the steps, cosine decay to 0. Seeded (torch.manual_seed, numpy Generators): a rerun
   with the same threads gives the same numbers.
3. Round r's student is round r+1's teacher (new pseudo-masks from it, fine-tuned further).

Evaluation of the teacher and every student on a seeded, class-balanced subset of the VAL
split (``--n-val``; never the test split): image AUC (``sklearn.metrics.roc_auc_score``), and
for four variants of the pipeline -- fused map and fused + SLIC refinement, each with
``decision.rule: threshold`` (P > 0.5) and with ``rule: calibrated`` (SLIC regions as its
units; the rule is set here, whatever the config's default is) -- the per-image pixel F1 at 0.5
(``weakloc.metrics``, mean over manipulated images, with its standard error), IoU, pixel AUC,
oracle F1, the mean flagged / true area on manipulated images, the mean flagged area on
authentic ones, and the agreement (F1) of each student's masks with its own teacher's masks
on the manipulated images (both empty = 1). Per-image paired differences against the original
teacher (mean and standard error) are reported too. The table is printed and written with
everything else to ``OUT/results.json``; each student is saved with
``weakloc.wcbnet.save_checkpoint`` at ``OUT/round{r}/wcbnet.pt`` (the teacher's meta plus a
``self_training`` note), usable as ``benchmarks/bench_unseen.py --checkpoint``.

**No ground-truth mask of a training image is read.** The train rows lose their ``mask``
column as soon as the manifest is read, and the pseudo-labelling and fine-tuning run inside
:func:`no_mask_reads`, which makes opening any file in a folder holding the manifest's
val/test masks raise (the prepared datasets keep every split's masks in one folder). Only
:func:`val_mask` reads masks, of val rows only, for the evaluation.

    OMP_NUM_THREADS=2 python benchmarks/self_train.py --checkpoint CKPT \\
        --manifest data/prepared/synthetic/manifest.csv --config config.yaml --out /tmp/selftrain \\
        [--n-train 600] [--epochs 3] [--rounds 1] [--pixel-weight 1.0] [--n-val 120] [--seed 0]
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from weakloc.cams import block_strides
from weakloc.config import load_config
from weakloc.decision import apply_decision, with_rule
from weakloc.intervals import standard_error
from weakloc.io import orient_array, quantize_prob, read_mask, read_rgb_stored
from weakloc.manifest import read_manifest
from weakloc.metrics import ScoreHistogram, f1_from_counts, histogram_metrics, summarize_localization
from weakloc.pipeline import Localizer
from weakloc.refinement import refine_with_config
from weakloc.runtime import resolve_device, set_threads
from weakloc.segmenters import build_segmenter
from weakloc.sel import SelSettings, scale_error_diff
from weakloc.selftrain import balanced_subset, pseudo_label
from weakloc.training import (
    PIXEL_BACKGROUND,
    PIXEL_FOREGROUND,
    PIXEL_IGNORE,
    PixelLoss,
    TrainImages,
    balanced_epoch_plan,
    compact_sel_of_file,
    warmup_cosine,
    wcbnet_loss,
)
from weakloc.wcbnet import load_checkpoint, save_checkpoint

#: The evaluated variants: (name, refined with SLIC?, decision rule). The rule is set explicitly,
#: whatever the config's ``refine.decision.rule`` says (the config's other refine keys are kept).
VARIANTS = (("fused", False, "threshold"), ("fused+cal", False, "calibrated"),
            ("slic", True, "threshold"), ("slic+cal", True, "calibrated"))
WARMUP_SHARE = 0.05
BACKGROUND_RULES = ("median", "outside")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="the teacher (a trained wcbnet.pt)")
    ap.add_argument("--manifest", required=True, help="its prepared dataset's manifest.csv")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--out", required=True, help="folder for results.json and round{r}/wcbnet.pt")
    ap.add_argument("--n-train", type=int, default=600, help="training images (half per label)")
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pixel-weight", type=float, default=1.0, help="weight of the masked pixel BCE")
    ap.add_argument("--lr-scale", type=float, default=0.1, help="learning rate = this x train.lr")
    ap.add_argument("--ring", type=int, default=3, help="ignored pixels on each side of a mask's border")
    ap.add_argument("--background", choices=BACKGROUND_RULES, default="median",
                    help="median: background = outside the mask and coarse map below the image's median; "
                         "outside: every pixel outside the mask and its ring (an empty mask keeps the median rule)")
    ap.add_argument("--n-val", type=int, default=120, help="validation images (half per label)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


# --------------------------------------------------------------------------- data

@contextlib.contextmanager
def no_mask_reads(mask_folders: set[Path]):
    """Inside: opening any file of ``mask_folders`` (by ``open`` or ``PIL.Image.open``) raises."""
    real_open, real_image_open = builtins.open, PIL.Image.open

    def check(path) -> None:
        if isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)).resolve().parent in mask_folders:
            raise AssertionError(f"self_train: a ground-truth mask was opened during training: {path}")

    def guarded_open(file, *a, **k):
        check(file)
        return real_open(file, *a, **k)

    def guarded_image_open(fp, *a, **k):
        check(fp)
        return real_image_open(fp, *a, **k)

    builtins.open, PIL.Image.open = guarded_open, guarded_image_open
    try:
        yield
    finally:
        builtins.open, PIL.Image.open = real_open, real_image_open


@dataclass
class Images:
    """A subset's images: ids, labels, compact SELs (``compact_sel_of_file``), pixels as stored,
    EXIF orientations, SLIC partitions and (val only) ground-truth masks in the displayed orientation."""

    ids: list[str]
    labels: np.ndarray
    sels: list[np.ndarray]
    stored: list[np.ndarray]
    orientations: list[int]
    partitions: list[np.ndarray]
    masks: list[np.ndarray | None]


def val_mask(row) -> np.ndarray | None:
    """The ground-truth mask of a VALIDATION row (None for authentic rows and unknown masks)."""
    assert row.split == "val", "self_train: only validation masks may be read"
    if int(row.label) == 0 or not row.mask:
        return None
    return read_mask(row.mask)


def load_images(rows: pd.DataFrame, config: dict, desc: str, with_masks: bool) -> Images:
    """SELs, pixels and SLIC partitions of ``rows``; masks only ``with_masks`` (validation rows).

    Training rows (``with_masks`` false) carry no ``mask`` column and stay in stored
    coordinates (the SEL's); validation partitions and masks are in the displayed orientation,
    as the pipeline scores them.
    """
    assert with_masks or "mask" not in rows.columns, "self_train: training rows must not carry masks"
    slic = build_segmenter("slic", config["segmenters"]["slic"])
    qualities = config["sel"]["qualities"]
    out = Images([], rows["label"].to_numpy().astype(int), [], [], [], [], [])
    for row in tqdm(rows.itertuples(index=False), total=len(rows), desc=desc, unit="img", file=sys.stderr):
        stored, orientation = read_rgb_stored(row.image)
        out.ids.append(str(row.id))
        out.sels.append(compact_sel_of_file(row.image, qualities))
        out.stored.append(stored)
        out.orientations.append(orientation if with_masks else 1)
        out.partitions.append(slic(orient_array(stored, orientation) if with_masks else stored))
        out.masks.append(val_mask(row) if with_masks else None)
    return out


# --------------------------------------------------------------------------- the teacher's maps

def refine_sections(config: dict) -> dict[str, dict]:
    """The config's ``refine`` section with ``decision.rule`` set to ``threshold`` and to ``calibrated``."""
    return {rule: with_rule(config["refine"], rule) for rule in ("threshold", "calibrated")}


def coarse_map(model, meta: dict, images: Images, i: int, config: dict) -> tuple[np.ndarray, float]:
    """Image ``i``'s fused map (8-bit, displayed orientation) and its image probability."""
    sel = scale_error_diff(images.sels[i], float(meta["config"]["sel"]["scale"]))
    det = Localizer.from_model(model, meta, config, segmenters=[]).detect(images.stored[i], images.orientations[i],
                                                                         sel=sel)
    return quantize_prob(det.coarse), det.score


def make_pseudo_labels(model, meta: dict, train: Images, config: dict, args, desc: str):
    """Every training image's pseudo-labels from ``model`` and a summary of them."""
    model.eval()
    refine_cal = refine_sections(config)["calibrated"]
    labels, stats = [], {"fg": [], "bg": [], "ignore": [], "empty_mask": 0, "prob": []}
    for i in tqdm(range(len(train.ids)), desc=desc, unit="img", file=sys.stderr):
        coarse, prob = coarse_map(model, meta, train, i, config)
        refined = quantize_prob(refine_with_config(coarse, [train.partitions[i]], refine_cal, image_prob=prob))
        mask = refined > 0.5
        lab = pseudo_label(coarse, mask, int(train.labels[i]), args.ring, args.background)
        labels.append(lab)
        if train.labels[i] == 1:
            stats["empty_mask"] += int(not mask.any())
            for key, value in (("fg", PIXEL_FOREGROUND), ("bg", PIXEL_BACKGROUND), ("ignore", PIXEL_IGNORE)):
                stats[key].append(float(np.mean(lab == value)))
            stats["prob"].append(prob)
    n_manip = int(np.sum(train.labels == 1))
    summary = {"manipulated_images": n_manip, "empty_calibrated_masks": stats["empty_mask"],
               **{f"mean_{k}_fraction": float(np.mean(stats[k])) if stats[k] else None for k in ("fg", "bg", "ignore")},
               "mean_image_prob_manipulated": float(np.mean(stats["prob"])) if stats["prob"] else None}
    return labels, summary


# --------------------------------------------------------------------------- fine-tuning

def training_samples(train: Images, labels: list[np.ndarray], config: dict) -> TrainImages:
    """Training's own samples (:class:`weakloc.training.TrainImages` with pixel labels) over the
    subset's cached SELs; the ids stand for the file names in its messages."""
    samples = TrainImages(train.ids, train.labels, SelSettings.from_config(config), int(config["train"]["crop_size"]),
                          labels)
    samples.cache = train.sels
    return samples


def make_batch(samples: TrainImages, items):
    """SEL crops ``(N, C, S, S)``, pseudo-label crops ``(N, S, S)`` (same crop and flip) and image labels."""
    samples.set_plan(items)
    x, y, lab = (torch.stack(t) for t in zip(*(samples[i] for i in range(len(items))), strict=True))
    return x, lab, y


def fine_tune(model, train: Images, labels: list[np.ndarray], config: dict, args, rnd: int, device) -> list[dict]:
    """Fine-tune every parameter of ``model`` in place; the per-epoch losses."""
    tcfg = config["train"]
    seed = args.seed * 1000 + rnd
    torch.manual_seed(seed)
    bs = int(tcfg["batch_size"])
    samples = training_samples(train, labels, config)
    plans = [balanced_epoch_plan(train.labels, seed, e) for e in range(1, args.epochs + 1)]
    total = sum(math.ceil(len(p) / bs) for p in plans)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr_scale * float(tcfg["lr"]),
                                  weight_decay=float(tcfg["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(max(1, int(WARMUP_SHARE * total)), total))
    strides, offset = block_strides(model)
    pixel_loss = PixelLoss(1.0, tuple(strides), float(offset))
    model.train()
    history = []
    for epoch, plan in enumerate(plans, start=1):
        sums = np.zeros(3)
        bar = tqdm(range(0, len(plan), bs), desc=f"round {rnd} epoch {epoch}/{args.epochs}", file=sys.stderr)
        for start in bar:
            x, lab, y = make_batch(samples, plan[start:start + bs])
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            out = model(x)
            image_loss = wcbnet_loss(out, y.to(device), float(tcfg["block_loss_weight"]))
            pix = pixel_loss(out.score_maps, lab.to(device))
            loss = image_loss + args.pixel_weight * pix
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            sums += np.array([float(loss.detach()), float(image_loss.detach()), float(pix.detach())]) * len(y)
            bar.set_postfix(loss=f"{sums[0] / min(len(plan), start + bs):.4f}")
        row = dict(zip(("loss", "image_loss", "pixel_loss"), (sums / len(plan)).tolist(), strict=True))
        history.append({"epoch": epoch, **row})
        print(f"round {rnd} epoch {epoch}: " + " ".join(f"{k} {v:.4f}" for k, v in row.items()), file=sys.stderr)
    model.eval()
    return history


# --------------------------------------------------------------------------- evaluation

def mask_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """F1 of mask ``a`` against mask ``b`` (1 when both are empty)."""
    tp, fp, fn = int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b))
    return 1.0 if tp + fp + fn == 0 else float(f1_from_counts(tp, fp, fn))


def variant_maps(model, meta: dict, val: Images, config: dict) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """Image probabilities and every variant's 8-bit map of each validation image."""
    model.eval()
    sections = refine_sections(config)
    probs, maps = [], {name: [] for name, _, _ in VARIANTS}
    for i in tqdm(range(len(val.ids)), desc="evaluate (val)", unit="img", file=sys.stderr):
        coarse, prob = coarse_map(model, meta, val, i, config)
        probs.append(prob)
        part = [val.partitions[i]]
        for name, refined, rule in VARIANTS:
            if refined:
                m = refine_with_config(coarse, part, sections[rule], image_prob=prob)
            else:
                m = apply_decision(coarse, part, prob, sections[rule].get("decision"))
            maps[name].append(quantize_prob(m))
    return np.asarray(probs), maps


def score_variant(maps: list[np.ndarray], val: Images, teacher_masks: list[np.ndarray] | None) -> dict:
    """One variant's metrics on the validation subset (see the module docstring)."""
    hists, f1s, area, auth, agree = [], [], [], [], []
    for i, m in enumerate(maps):
        flagged = m > 0.5
        gt = val.masks[i]
        if val.labels[i] == 0:
            auth.append(float(flagged.mean()))
            continue
        if gt is None or not gt.any():
            continue  # unknown or empty ground truth: no pixel metrics (weakloc.metrics)
        hist = ScoreHistogram.from_maps(m, gt)
        hists.append(hist)
        f1s.append(histogram_metrics(hist, 0.5)["f1"])
        area.append(float(flagged.sum() / gt.sum()))
        if teacher_masks is not None:
            agree.append(mask_agreement(flagged, teacher_masks[i]))
    s = summarize_localization(hists, 0.5)
    return {"f1": s["f1"], "f1_sem": standard_error(f1s), "iou": s["iou"], "pixel_auc": s["auc"],
            "oracle_f1": s["best_f1"],
            "area_ratio": float(np.mean(area)) if area else None,
            "authentic_flagged": float(np.mean(auth)) if auth else None,
            "authentic_over_1pct": float(np.mean(np.asarray(auth) > 0.01)) if auth else None,
            "agreement_with_teacher": float(np.mean(agree)) if agree else None,
            "n_manipulated": s["n_images"], "n_authentic": len(auth), "per_image_f1": f1s}


def evaluate(model, meta: dict, val: Images, config: dict, teacher_masks: dict | None) -> tuple[dict, dict]:
    """Image AUC and every variant's scores; also this model's masks (for its student's agreement)."""
    probs, maps = variant_maps(model, meta, val, config)
    result = {"image_auc": float(roc_auc_score(val.labels, probs)) if len(set(val.labels)) == 2 else None,
              "variants": {}}
    masks = {}
    for name, _, _ in VARIANTS:
        reference = None if teacher_masks is None else teacher_masks[name]
        result["variants"][name] = score_variant(maps[name], val, reference)
        masks[name] = [m > 0.5 for m in maps[name]]
    return result, masks


# --------------------------------------------------------------------------- report

def paired_differences(rows: list[dict]) -> None:
    """Add to each student row, per variant, the per-image F1 difference to the original teacher (mean, SE)."""
    base = rows[0]["variants"]
    for row in rows[1:]:
        for name, v in row["variants"].items():
            d = np.asarray(v["per_image_f1"]) - np.asarray(base[name]["per_image_f1"])
            v["f1_minus_teacher"] = float(d.mean()) if d.size else None
            v["f1_minus_teacher_se"] = standard_error(d)


def format_table(rows: list[dict]) -> str:
    """The Markdown table: one row per model, four columns per variant."""
    def num(v, fmt="{:.3f}"):
        return "n/a" if v is None else fmt.format(v)

    head = ["model", "image AUC"]
    for name, _, _ in VARIANTS:
        head += [f"{name} F1 (±SE)", f"{name} flagged/true", f"{name} auth. flagged", f"{name} agree"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        cells = [row["model"], num(row["image_auc"])]
        for name, _, _ in VARIANTS:
            v = row["variants"][name]
            cells += [f"{num(v['f1'])} ± {num(v['f1_sem'])}", num(v["area_ratio"], "{:.2f}x"),
                      num(None if v["authentic_flagged"] is None else 100 * v["authentic_flagged"], "{:.1f} %"),
                      num(v["agreement_with_teacher"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per-image F1 difference to the original teacher (mean ± SE of the paired differences):", ""]
    lines += ["| model | " + " | ".join(n for n, _, _ in VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for row in rows[1:]:
        cells = [f"{num(row['variants'][n].get('f1_minus_teacher'), '{:+.3f}')} ± "
                 f"{num(row['variants'][n].get('f1_minus_teacher_se'))}" for n, _, _ in VARIANTS]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- main

def prepare(args, config: dict) -> tuple[Images, Images, set[Path], dict]:
    """The training and validation subsets (train rows without their mask column) and the mask folders."""
    df = read_manifest(args.manifest)
    mask_folders = {Path(m).resolve().parent for m in df.loc[df["split"] != "train", "mask"] if m}
    train_rows = df[df["split"] == "train"].drop(columns=["mask"])  # never read a training mask
    val_rows = df[df["split"] == "val"]
    train_rows = balanced_subset(train_rows, args.n_train, np.random.default_rng([args.seed, 1]))
    val_rows = balanced_subset(val_rows, args.n_val, np.random.default_rng([args.seed, 2]))
    t0 = time.perf_counter()
    with no_mask_reads(mask_folders):
        train = load_images(train_rows, config, "train images (SEL, SLIC)", with_masks=False)
    t1 = time.perf_counter()
    val = load_images(val_rows, config, "val images (SEL, SLIC, masks)", with_masks=True)
    times = {"load_train_s": t1 - t0, "load_val_s": time.perf_counter() - t1}
    return train, val, mask_folders, times


def run_round(rnd: int, teacher, meta: dict, train: Images, config: dict, args, device, mask_folders, out: Path):
    """Pseudo-labels from ``teacher``, a fine-tuned copy of it saved at OUT/round{r}/wcbnet.pt; (student, info)."""
    t0 = time.perf_counter()
    with no_mask_reads(mask_folders):
        labels, pl_stats = make_pseudo_labels(teacher, meta, train, config, args, f"round {rnd} pseudo-masks")
        t1 = time.perf_counter()
        student = copy.deepcopy(teacher)
        history = fine_tune(student, train, labels, config, args, rnd, device)
    t2 = time.perf_counter()
    note = {"round": rnd, "teacher": args.checkpoint if rnd == 1 else str(out / f"round{rnd - 1}" / "wcbnet.pt"),
            "manifest": str(args.manifest), "n_train": len(train.ids), "epochs": args.epochs,
            "pixel_weight": args.pixel_weight, "lr": args.lr_scale * float(config["train"]["lr"]),
            "ring": args.ring, "background": args.background, "seed": args.seed, "decision": "calibrated",
            "fusion": config["fusion"]["methods"][0],
            "history": history, "pseudo_labels": pl_stats,
            "note": "benchmarks/self_train.py prototype; image_threshold and val_auc are the original teacher's"}
    extra = {k: v for k, v in meta.items() if k != "config"}
    extra["self_training"] = [*extra.get("self_training", []), note]
    path = out / f"round{rnd}" / "wcbnet.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, student, meta["config"], extra)
    student_meta = {**meta, **extra}
    return student, student_meta, {"checkpoint": str(path), "pseudo_labels": pl_stats, "history": history,
                                   "pseudo_labels_s": t1 - t0, "fine_tune_s": t2 - t1}


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    config = load_config(args.config)
    threads = set_threads(None)
    device = resolve_device(config["train"]["device"], "train.device")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher, meta = load_checkpoint(args.checkpoint, map_location=device)
    train, val, mask_folders, times = prepare(args, config)
    settings = {k: getattr(args, k) for k in vars(args)}
    settings.update(threads=threads, device=str(device), lr=args.lr_scale * float(config["train"]["lr"]),
                    crop_size=int(config["train"]["crop_size"]), batch_size=int(config["train"]["batch_size"]),
                    refine=config["refine"], slic=config["segmenters"]["slic"], fusion=config["fusion"]["methods"][0],
                    teacher_meta={k: v for k, v in meta.items() if k != "config"})
    payload = {"settings": settings, "rows": [], "times": times}
    t0 = time.perf_counter()
    result, masks = evaluate(teacher, meta, val, config, None)
    payload["rows"].append({"model": "teacher", "checkpoint": args.checkpoint, "eval_s": time.perf_counter() - t0,
                            **result})
    write_results(out / "results.json", payload)
    for rnd in range(1, args.rounds + 1):
        student, student_meta, info = run_round(rnd, teacher, meta, train, config, args, device, mask_folders, out)
        t0 = time.perf_counter()
        result, student_masks = evaluate(student, student_meta, val, config, masks)
        payload["rows"].append({"model": f"round {rnd} student", **info, "eval_s": time.perf_counter() - t0, **result})
        paired_differences(payload["rows"])
        write_results(out / "results.json", payload)
        teacher, meta, masks = student, student_meta, student_masks
    payload["times"]["total_s"] = time.perf_counter() - t_start
    table = format_table(payload["rows"])
    payload["table"] = table
    write_results(out / "results.json", payload)
    print(table)
    stages = [f"{r['model']}: " + ", ".join(f"{k[:-2]} {r[k]:.0f} s" for k in ("pseudo_labels_s", "fine_tune_s",
                                                                             "eval_s") if k in r)
              for r in payload["rows"]]
    print("\nwall time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in payload["times"].items())
          + "; " + "; ".join(stages), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
