"""The study's figures, as PNG files: qualitative panels, F1 by segmenter, threshold curves,
training curves.

Every figure is drawn on its own :class:`matplotlib.figure.Figure` with the Agg renderer (no
pyplot, no global state), from files the workflow names explicitly, and written atomically.
Given the same inputs a figure is the same file, byte for byte (the qualitative panel picks
its images with a seeded RNG).

Inputs are the workflow's outputs (docs/architecture.md):

- maps: ``results/{d}/seed{s}/cams/block{b}/{id}.png``, ``fused/{fusion}/{id}.png``,
  ``refined/{fusion}/{segset}/{id}.png`` (8-bit PNG, value / 255 = probability);
- partitions: ``results/{d}/segments/{segmenter}/{key}/{id}.npz`` (``labels``, ``(H, W) int32``);
- scores: ``results/{d}/seed{s}/scores/{variant}.json`` with a top-level ``f1`` (mean over
  manipulated images) and ``threshold_curve: {thresholds: [...], f1: [...]}``; baselines'
  ``results/{d}/baselines/scores/baseline-{name}.json`` have no seed;
- training logs: ``checkpoints/{d}/[sel-{q}/]seed{s}/train_log.csv`` with columns
  ``epoch, train_loss, val_loss, val_auc, lr, seconds``.

A variant's name is its score file's stem: ``fused-{fusion}``, ``refined-{fusion}-{segset}``,
``baseline-{name}`` (the grammar: :mod:`weakloc.layout`); a run's seed is the ``seed{s}`` folder
in its path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, read_mask, read_prob, read_rgb
from weakloc.layout import is_sel_folder, parse_baseline_variant, parse_block_folder, parse_seed_folder
from weakloc.layout import parse_variant as parse_score_variant
from weakloc.manifest import manipulated_with_masks, read_manifest

#: Colour map of every probability map (0 = authentic, 1 = manipulated).
MAP_CMAP = "magma"
DPI = 110
TRAIN_LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds")


# ----------------------------------------------------------------------------- helpers

def _save(fig: Figure, out: str | Path) -> Path:
    """Render ``fig`` with Agg and write it to ``out`` (PNG) atomically."""
    out = Path(out)
    FigureCanvasAgg(fig)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return out


def seed_of(path: str | Path) -> int | None:
    """The seed of a run from the ``seed{s}`` folder in ``path`` (None when there is none)."""
    for part in reversed(Path(path).parts):
        seed = parse_seed_folder(part)
        if seed is not None:
            return seed
    return None


def parse_variant(stem: str) -> tuple[str, str, str]:
    """``(family, fusion, segset)`` of a score file's stem.

    The stems are those of :func:`weakloc.layout.parse_variant` plus the baselines':
    ``fused-attention`` -> ``("fused", "attention", "none")``;
    ``refined-mean-slic`` -> ``("refined", "mean", "slic")``;
    ``refined-mean-slic-prior10`` -> ``("prior", "mean", "slic")``;
    ``block2`` -> ``("block", "", "block2")``; ``sel-75-90-fused-mean`` -> ``("sel", "mean", "none")``;
    ``baseline-ela`` -> ``("baseline", "", "ela")``; anything else -> ``("other", "", stem)``.
    """
    baseline = parse_baseline_variant(stem)
    if baseline is not None:
        return "baseline", "", baseline
    parsed = parse_score_variant(stem)
    if parsed is None:
        return "other", "", stem
    family, fields = parsed
    if family == "block":
        return family, "", stem
    return family, fields.get("fusion", ""), fields.get("segset", "none")


def read_scores(path: str | Path) -> dict:
    """Read one score JSON (``weakloc score --json``) as a dict; errors name the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            scores = json.load(fh)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: score file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeaklocError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(scores, dict):
        raise WeaklocError(f"{path}: expected a JSON object of scores")
    return scores


def _number(scores: dict, key: str, path: Path) -> float:
    value = scores.get(key)
    if key in scores and value is None:
        raise WeaklocError(f"{path}: key {key!r} is null (no image with a mask could be scored)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WeaklocError(f"{path}: key {key!r} missing or not a number")
    return float(value)


def _labels_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path) as npz:
            return np.asarray(npz["labels"], dtype=np.int32)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: partition not found") from None
    except KeyError:
        raise WeaklocError(f"{path}: no 'labels' array in the partition file") from None
    except (OSError, ValueError) as exc:
        raise WeaklocError(f"{path}: unreadable partition ({exc})") from None


# ----------------------------------------------------------------------------- 1. qualitative

def choose_examples(manifest: pd.DataFrame, n: int, seed: int) -> list[str]:
    """A fixed, seeded choice of ``n`` manipulated images with a ground-truth mask.

    ``manifest``: rows of one split (:func:`weakloc.manifest.read_manifest`). The choice
    depends only on the candidate ids (their manifest order) and ``seed``; the ids come back
    in manifest order. Fewer than ``n`` candidates: all of them.
    """
    candidates = manipulated_with_masks(manifest)["id"].tolist()
    if n <= 0 or not candidates:
        return []
    rng = np.random.default_rng(seed)
    picked = set(rng.choice(len(candidates), size=min(n, len(candidates)), replace=False).tolist())
    return [c for i, c in enumerate(candidates) if i in picked]


def _block_dirs(cams_dir: Path) -> list[Path]:
    blocks = [p for p in cams_dir.glob("block*") if p.is_dir() and parse_block_folder(p.name) is not None]
    if not blocks:
        raise WeaklocError(f"{cams_dir}: no block<b>/ folders of activation maps")
    return sorted(blocks, key=lambda p: parse_block_folder(p.name))


def _folder_label(folder: str | Path, step: str, keep: int | None = None) -> str:
    """A column title from a map folder: the path parts after ``step`` (``fused``, ``refined``,
    ``segments``), without ``default``; e.g. ``.../refined/attention/slic/default`` ->
    ``attention, slic``. ``keep`` limits the parts (a segment cache's settings hash is dropped)."""
    parts = Path(folder).parts
    if step in parts:
        after = parts[len(parts) - 1 - parts[::-1].index(step) + 1:]
        after = [p for p in after[:keep] if p != "default"]
        if after:
            return ", ".join(after)
    return Path(folder).name


def qualitative_panels(manifest: str | Path, cams_dir: str | Path, fused_dirs: Sequence[str | Path],
                       segment_dirs: Sequence[str | Path], refined_dirs: Sequence[str | Path],
                       out: str | Path, n: int = 6, seed: int = 0, split: str = "test") -> list[str]:
    """Figure 1: one row per chosen test image (:func:`choose_examples`).

    Columns: image, ground truth, each block's map (``cams_dir/block{b}/{id}.png``), each
    fused map (``{fused_dir}/{id}.png``), each segmenter's regions drawn over the image
    (``{segment_dir}/{id}.npz``, boundaries with ``skimage.segmentation.mark_boundaries``),
    each refined map (``{refined_dir}/{id}.png``). Maps are drawn with a fixed 0..1 colour
    scale. Returns the ids shown; raises :class:`WeaklocError` naming a missing file, or when
    the split has no manipulated image with a mask.
    """
    from skimage.segmentation import mark_boundaries

    rows = read_manifest(manifest, split=split)
    ids = choose_examples(rows, n, seed)
    if not ids:
        raise WeaklocError(f"{manifest}: no manipulated {split} image with a mask to show (or n = 0)")
    by_id = rows.set_index("id")
    cams_dir = Path(cams_dir)
    columns: list[tuple[str, str, Path | None]] = [("image", "Image", None), ("mask", "Ground truth", None)]
    columns += [("map", f"Block {p.name[5:]}", p) for p in _block_dirs(cams_dir)]
    columns += [("map", f"Fused ({_folder_label(d, 'fused')})", Path(d)) for d in fused_dirs]
    columns += [("segments", f"Segments ({_folder_label(d, 'segments', keep=1)})", Path(d)) for d in segment_dirs]
    columns += [("map", f"Refined ({_folder_label(d, 'refined')})", Path(d)) for d in refined_dirs]

    ncol, nrow = len(columns), len(ids)
    fig = Figure(figsize=(1.7 * ncol, 1.75 * nrow + 0.3), layout="constrained")
    axes = np.asarray(fig.subplots(nrow, ncol, squeeze=False))
    image_artist = None
    for r, image_id in enumerate(ids):
        row = by_id.loc[image_id]
        rgb = read_rgb(row["image"])
        for c, (kind, title, folder) in enumerate(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if kind == "image":
                ax.imshow(rgb)
            elif kind == "mask":
                ax.imshow(read_mask(row["mask"]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            elif kind == "segments":
                labels = _labels_npz(folder / f"{image_id}.npz")
                if labels.shape != rgb.shape[:2]:
                    raise WeaklocError(f"{folder / f'{image_id}.npz'}: partition {labels.shape} does not match "
                                       f"the image {rgb.shape[:2]}")
                ax.imshow(mark_boundaries(rgb, labels, color=(1, 1, 0), mode="inner"))
            else:
                image_artist = ax.imshow(read_prob(folder / f"{image_id}.png"), cmap=MAP_CMAP, vmin=0, vmax=1,
                                         interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(image_id, fontsize=7)
    if image_artist is not None:
        fig.colorbar(image_artist, ax=axes[:, -1].tolist(), shrink=0.6, label="P(manipulated)")
    _save(fig, out)
    return ids


# ----------------------------------------------------------------------------- 2. F1 by segmenter

def score_table(score_files: Sequence[str | Path], metric: str = "f1") -> pd.DataFrame:
    """One row per score file: ``variant, family, fusion, segset, seed, value``.

    ``value`` is the JSON's top-level ``metric`` (per-image mean). ``seed`` is -1 for files
    outside a ``seed{s}`` folder (baselines).
    """
    if not score_files:
        raise WeaklocError("no score files given")
    rows = []
    for f in score_files:
        path = Path(f)
        scores = read_scores(path)
        family, fusion, segset = parse_variant(path.stem)
        seed = seed_of(path)
        rows.append({"variant": path.stem, "family": family, "fusion": fusion, "segset": segset,
                     "seed": -1 if seed is None else seed, "value": _number(scores, metric, path)})
    return pd.DataFrame(rows)


def f1_by_segmenter(score_files: Sequence[str | Path], out: str | Path, metric: str = "f1") -> pd.DataFrame:
    """Figure 2: pixel F1 (or ``metric``) of the fused map and of each refinement, per seed.

    x: segmenter set (``none`` = the fused map before refinement, then each segset in the
    order first seen); colour: fusion method; one point per seed plus a bar at the mean over
    seeds, so the run-to-run spread is visible. Returns the table that was plotted.
    """
    import seaborn as sns

    table = score_table(score_files, metric)
    table = table[table["family"].isin(["fused", "refined"])].reset_index(drop=True)
    if table.empty:
        raise WeaklocError("no fused-*.json or refined-*.json among the score files")
    order = ["none"] + [s for s in dict.fromkeys(table["segset"]) if s != "none"]
    order = [s for s in order if s in set(table["segset"])]
    hue_order = list(dict.fromkeys(table["fusion"]))
    n_seeds = table["seed"].nunique()
    fig = Figure(figsize=(max(4.5, 1.1 * len(order) + 2.5), 3.6), layout="constrained")
    ax = fig.subplots()
    with sns.axes_style("whitegrid"):
        sns.stripplot(data=table, x="segset", y="value", hue="fusion", order=order, hue_order=hue_order,
                      dodge=True, jitter=False, alpha=0.7, size=5, ax=ax)
        sns.pointplot(data=table, x="segset", y="value", hue="fusion", order=order, hue_order=hue_order,
                      dodge=0.8 - 0.8 / max(len(hue_order), 1), errorbar=None, markers="_", markersize=18,
                      linestyle="none", ax=ax, legend=False)
    ax.set_xlabel("segmenter (none = fused map, no refinement)")
    ax.set_ylabel(f"pixel {metric} at 0.5" if metric == "f1" else metric)
    ax.set_title(f"{metric} by segmenter: points = seeds ({n_seeds}), bar = mean", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="fusion", fontsize=7, title_fontsize=7, loc="best")
    _save(fig, out)
    return table


# ----------------------------------------------------------------------------- 3. threshold curves

def threshold_table(score_files: Sequence[str | Path]) -> pd.DataFrame:
    """Long table of every file's ``threshold_curve``: ``variant, family, seed, threshold, f1``."""
    if not score_files:
        raise WeaklocError("no score files given")
    frames = []
    for f in score_files:
        path = Path(f)
        curve = read_scores(path).get("threshold_curve")
        if not isinstance(curve, dict) or "thresholds" not in curve or "f1" not in curve:
            raise WeaklocError(f"{path}: key 'threshold_curve' with 'thresholds' and 'f1' lists is missing")
        t, v = np.asarray(curve["thresholds"], dtype=float), np.asarray(curve["f1"], dtype=float)
        if t.ndim != 1 or t.shape != v.shape or t.size == 0:
            raise WeaklocError(f"{path}: threshold_curve.thresholds and .f1 must be lists of the same length")
        seed = seed_of(path)
        frames.append(pd.DataFrame({"variant": path.stem, "family": parse_variant(path.stem)[0],
                                    "seed": -1 if seed is None else seed, "threshold": t, "f1": v}))
    return pd.concat(frames, ignore_index=True)


def threshold_curves(score_files: Sequence[str | Path], out: str | Path, fixed: float = 0.5) -> pd.DataFrame:
    """Figure 3: pixel F1 against the binarisation threshold for each variant.

    One line per variant (mean over seeds, band = one standard deviation across seeds when
    there are several); fused, refined and baseline variants get solid, dashed and dotted
    lines (other families their own dash patterns). The fixed threshold ``fixed`` is marked;
    the highest point of a line is that variant's oracle (best-threshold) F1. Returns the
    plotted long table.
    """
    import seaborn as sns

    table = threshold_table(score_files)
    variants = list(dict.fromkeys(table["variant"]))
    dashes = {"block": (2, 1), "fused": "", "refined": (4, 2), "prior": (4, 1, 1, 1), "sel": (6, 2),
              "baseline": (1, 1.5), "other": (6, 2, 1, 2)}
    families = [f for f in dashes if f in set(table["family"])]
    colours = sns.color_palette("tab20" if len(variants) > 10 else "tab10", len(variants))
    palette = dict(zip(variants, colours, strict=True))
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    sns.lineplot(data=table, x="threshold", y="f1", hue="variant", hue_order=variants, palette=palette,
                 style="family", style_order=families, dashes={f: dashes[f] for f in families},
                 errorbar="sd", estimator="mean", ax=ax)
    ax.axvline(fixed, color="0.4", lw=0.8, ls=":")
    ax.text(fixed, 1.0, f" fixed {fixed:g}", transform=ax.get_xaxis_transform(), va="top", fontsize=7, color="0.3")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("threshold on the map")
    ax.set_ylabel("pixel F1 (mean over manipulated images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _save(fig, out)
    return table


# ----------------------------------------------------------------------------- 4. training curves

def _run_label(path: Path) -> str:
    tags = [p for p in path.parts[:-1] if parse_seed_folder(p) is not None or is_sel_folder(p)]
    return " ".join(tags) if tags else path.parent.name or path.stem


def read_train_log(path: str | Path) -> pd.DataFrame:
    """A ``train_log.csv`` with the columns :data:`TRAIN_LOG_COLUMNS`; errors name the file."""
    from weakloc.tables import read_csv_file

    return read_csv_file(path, TRAIN_LOG_COLUMNS, "training log", empty="has no epochs")


def training_curves(logs: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Figure 4: training and validation loss, and validation image AUC, against the epoch.

    One colour per run (``seed{s}``, with ``sel-...`` for the SEL ablation's models); solid
    lines are the training loss, dashed the validation loss. Returns the combined log.
    """
    import seaborn as sns

    if not logs:
        raise WeaklocError("no training logs given")
    frames = []
    for f in logs:
        log = read_train_log(f)
        log = log.assign(run=_run_label(Path(f)))
        frames.append(log)
    table = pd.concat(frames, ignore_index=True)
    runs = list(dict.fromkeys(table["run"]))
    palette = dict(zip(runs, sns.color_palette("tab10", len(runs)), strict=True))
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_loss, ax_auc = fig.subplots(1, 2)
    long = table.melt(id_vars=["run", "epoch"], value_vars=["train_loss", "val_loss"], var_name="split",
                      value_name="loss")
    sns.lineplot(data=long, x="epoch", y="loss", hue="run", hue_order=runs, palette=palette, style="split",
                 style_order=["train_loss", "val_loss"], dashes={"train_loss": "", "val_loss": (4, 2)}, ax=ax_loss)
    sns.lineplot(data=table, x="epoch", y="val_auc", hue="run", hue_order=runs, palette=palette, ax=ax_auc,
                 legend=False)
    ax_loss.set_title("loss (solid: train, dashed: validation)", fontsize=9)
    ax_auc.set_title("validation image-level AUC", fontsize=9)
    ax_auc.set_ylabel("AUC")
    for ax in (ax_loss, ax_auc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.legend(fontsize=7)
    _save(fig, out)
    return table


# ----------------------------------------------------------------------------- robustness

def robustness_curves(level_files: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Pixel F1 against the perturbation level: one panel per perturbation, one line per method.

    Reads the JSONs of ``weakloc robustness`` (one per level, and per seed for the pipeline);
    the unperturbed level ``none`` is drawn as each method's dashed reference line. Returns the
    plotted long table (``kind, value, method, f1``).
    """
    from weakloc.perturb import PERTURBATIONS
    from weakloc.protocol import read_level_files

    recs = []
    for lv in read_level_files(level_files):
        for method, summary in lv["methods"].items():
            baseline = parse_baseline_variant(method)
            label = "ours (robustness.segmenters)" if method == "pipeline" else (baseline or method).upper()
            recs.append({"kind": lv["kind"], "value": lv["value"], "method": label, "f1": summary.get("f1")})
    table = pd.DataFrame(recs, columns=["kind", "value", "method", "f1"])
    kinds = [k for k in PERTURBATIONS if k in set(table["kind"])]
    if not kinds:
        raise WeaklocError("robustness figure: no perturbed level among the files")
    xlabels = {"jpeg": "JPEG quality", "blur": "Gaussian kernel size", "noise": "noise variance (0-255 scale)",
               "resize": "resize factor"}
    methods = list(dict.fromkeys(table["method"]))
    colours = dict(zip(methods, [f"C{i}" for i in range(len(methods))], strict=True))
    fig = Figure(figsize=(2.6 * len(kinds) + 1.6, 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    clean = table[table["kind"] == "none"].groupby("method")["f1"].mean()
    for ax, kind in zip(axes, kinds, strict=True):
        sub = table[table["kind"] == kind].groupby(["method", "value"], as_index=False)["f1"].mean()
        for m in methods:
            line = sub[sub["method"] == m].sort_values("value")
            if not line.empty:
                ax.plot(line["value"], line["f1"], marker="o", ms=3, color=colours[m], label=m)
            if m in clean.index:
                ax.axhline(clean[m], color=colours[m], lw=0.7, ls="--")
        ax.set_xlabel(xlabels[kind])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pixel F1 at 0.5")
    axes[0].set_ylim(bottom=0)
    axes[-1].legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    _save(fig, out)
    return table
