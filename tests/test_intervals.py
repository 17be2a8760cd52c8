"""Bootstrap intervals (weakloc.intervals): cross-checked draw by draw against scikit-learn, and
carried from the score files into every table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from weakloc.intervals import (
    BootstrapSettings,
    detection_intervals,
    localization_intervals,
    percentile_interval,
    resample_indices,
)
from weakloc.metrics import ScoreHistogram, image_metrics, summarize_localization
from weakloc.tables import build_tables

BOOT = BootstrapSettings(resamples=300, level=0.95, seed=3)


def quantiles(values) -> list[float]:
    return list(np.quantile(np.asarray(values, dtype=float), [0.025, 0.975]))


def test_settings_come_from_the_schema():
    assert BootstrapSettings.from_section({}) == BootstrapSettings(resamples=2000, level=0.95, seed=0)


def test_stratified_draws_keep_each_label_count_and_repeat_with_the_seed():
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    idx = resample_indices(labels.size, BOOT, strata=labels)
    assert idx.shape == (300, 8)
    assert np.all(labels[idx] == labels[None, :])  # a manipulated column draws manipulated images only
    assert np.array_equal(idx, resample_indices(labels.size, BOOT, strata=labels))
    other = resample_indices(labels.size, BootstrapSettings(300, 0.95, 4), strata=labels)
    assert not np.array_equal(idx, other)


def test_detection_intervals_equal_sklearn_on_the_same_draws():
    rng = np.random.default_rng(0)
    y = (rng.random(60) < 0.4).astype(int)
    s = np.clip(0.5 * y + rng.normal(0.25, 0.2, 60), 0, 1).round(2)  # rounded: ties in the ranking
    got = detection_intervals(y, s, 0.5, BOOT)
    idx = resample_indices(y.size, BOOT, strata=y.astype(bool))
    auc, acc, f1, img_f1 = [], [], [], []
    for row in idx:
        yy, ss = y[row], s[row]
        auc.append(roc_auc_score(yy, ss))
        acc.append(accuracy_score(yy, ss > 0.5))
        f1.append(f1_score(yy, ss > 0.5, zero_division=0))
        img_f1.append(image_metrics(yy, ss)["image_f1"])
    assert got["auc"] == pytest.approx(quantiles(auc), abs=1e-12)
    assert got["accuracy"] == pytest.approx(quantiles(acc), abs=1e-12)
    assert got["f1"] == pytest.approx(quantiles(f1), abs=1e-12)
    assert got["image_f1"] == pytest.approx(quantiles(img_f1), abs=1e-12)
    point = image_metrics(y, s)
    for key in ("auc", "accuracy", "f1", "image_f1"):
        assert got[key][0] <= point[key] <= got[key][1], key
    assert detection_intervals(np.ones(5), np.linspace(0, 1, 5), 0.5, BOOT)["auc"] is None  # one class


def _maps(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gt = np.zeros((12, 12), bool)
        gt[2:2 + 2 + i % 6, 3:9] = True
        pred = np.clip(0.6 * gt + rng.normal(0.2, 0.25, gt.shape), 0, 1).astype(np.float32)
        if i == 0:
            pred[:] = 0.7  # constant: no AUC, left out of the AUC means
        out.append((pred, gt))
    return out


def test_localization_intervals_equal_sklearn_on_the_same_draws():
    maps = _maps(25, 1) + [(np.zeros((4, 4), np.float32), np.zeros((4, 4), bool))]  # an empty mask: skipped
    hists = [ScoreHistogram.from_maps(p, g) for p, g in maps]
    per_image, pooled = localization_intervals(hists, 0.5, BOOT)
    used = maps[:25]
    f1 = np.array([f1_score(g.ravel(), p.ravel() > 0.5) for p, g in used])
    auc = np.array([np.nan] + [roc_auc_score(g.ravel(), p.ravel()) for p, g in used[1:]])
    idx = resample_indices(len(used), BOOT)
    assert per_image["f1"] == pytest.approx(quantiles(f1[idx].mean(axis=1)), abs=1e-12)
    assert per_image["auc"] == pytest.approx(quantiles(np.nanmean(auc[idx], axis=1)), abs=1e-12)
    pooled_f1, pooled_mcc = [], []
    for row in idx:
        g = np.concatenate([used[i][1].ravel() for i in row])
        p = np.concatenate([used[i][0].ravel() for i in row]) > 0.5
        pooled_f1.append(f1_score(g, p))
        pooled_mcc.append(matthews_corrcoef(g, p))
    assert pooled["f1"] == pytest.approx(quantiles(pooled_f1), abs=1e-12)
    assert pooled["mcc"] == pytest.approx(quantiles(pooled_mcc), abs=1e-12)
    point = summarize_localization(hists, 0.5)
    assert per_image["f1"][0] <= point["f1"] <= per_image["f1"][1]
    assert localization_intervals(hists[-1:], 0.5, BOOT) == ({k: None for k in per_image}, {k: None for k in pooled})


def test_interval_narrows_as_the_test_split_grows():
    """The half-width of a mean's interval falls as 1 / sqrt(n) (here 4x the images: half the width)."""
    rng = np.random.default_rng(5)
    widths = []
    for n in (100, 400):
        values = rng.random(n)
        idx = resample_indices(n, BootstrapSettings(4000, 0.95, 0))
        lo, hi = percentile_interval(values[idx].mean(axis=1), 0.95)
        widths.append(hi - lo)
        assert (hi - lo) / 2 == pytest.approx(1.96 * values.std(ddof=1) / np.sqrt(n), rel=0.1)  # normal theory
    assert widths[1] / widths[0] == pytest.approx(0.5, rel=0.15)


def test_score_files_carry_intervals_into_the_tables(tmp_path):
    """`weakloc score`'s summary has the intervals; the tables print them and their CSV has the bounds."""
    from weakloc.io import write_mask, write_prob
    from weakloc.scoring import score_maps, write_scores

    gt_dir, root = tmp_path / "gt", tmp_path / "results" / "synthetic"
    for seed in (0, 1):
        pred_dir = tmp_path / f"pred{seed}"
        pred_dir.mkdir()
        gt_dir.mkdir(exist_ok=True)
        for i, (p, g) in enumerate(_maps(20, seed)):
            write_mask(g, gt_dir / f"im{i:02d}.png")
            write_prob(p, pred_dir / f"im{i:02d}.png")
        _, summary = score_maps(pred_dir, gt_dir, bootstrap=BOOT, progress=False)
        assert summary["bootstrap"]["resamples"] == 300
        assert summary["interval"]["f1"][0] <= summary["f1"] <= summary["interval"]["f1"][1]
        assert set(summary["dataset_level"]["interval"]) == {"f1", "iou", "mcc"}
        write_scores(pd.DataFrame(), summary, root / f"seed{seed}" / "scores" / "fused-mean.json")
    lows = [json.loads((root / f"seed{s}" / "scores" / "fused-mean.json").read_text())["interval"]["f1"][0]
            for s in (0, 1)]
    out = tmp_path / "tables"
    build_tables(sorted(root.rglob("*.json")), out, {"fusion": {"methods": ["mean"]}})
    row = pd.read_csv(out / "localization.csv").set_index("row").loc["Fused (mean)"]
    assert row["f1_lo"] == pytest.approx(np.mean(lows)) and row["f1_lo"] < row["f1_mean"] < row["f1_hi"]
    md = (out / "localization.md").read_text()
    assert f"[{row['f1_lo']:.3f}, {row['f1_hi']:.3f}]" in md and "95% percentile-bootstrap interval" in md
    dl = pd.read_csv(out / "localization_dataset_level.csv")
    assert {"f1_lo", "f1_hi"} <= set(dl.columns) and "auc_lo" not in dl.columns  # pooled AUC has none
    summary = json.loads((out / "summary.json").read_text())
    assert summary["localization"]["fused-mean"]["f1_interval"] == pytest.approx([row["f1_lo"], row["f1_hi"]])
