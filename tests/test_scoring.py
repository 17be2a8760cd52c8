"""`weakloc score`: a folder of maps against masks from a folder or a manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, jaccard_score, matthews_corrcoef, roc_auc_score

from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.io import read_prob, write_mask, write_prob
from weakloc.manifest import write_manifest
from weakloc.scoring import score_maps


@pytest.fixture()
def tree(tmp_path):
    """3 masked images (one map missing), 1 empty mask; maps named <id>.png."""
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    truth = {}
    for i, (h, w) in enumerate([(20, 30), (25, 25), (16, 40), (18, 18)]):
        mask = np.zeros((h, w), bool)
        if i < 3:
            mask[3:3 + h // 2, 4:4 + w // 3] = True
        write_mask(mask, gt_dir / f"im{i}.png")
        pred = np.clip(0.4 * mask + rng.random((h, w)) * 0.7, 0, 1)
        if i != 1:  # im1's map is missing
            write_prob(pred, pred_dir / f"im{i}.png")
        truth[f"im{i}"] = mask
    return tmp_path, truth


def test_score_dir_matches_sklearn_and_counts_missing(tree):
    root, truth = tree
    per, summ = score_maps(root / "pred", root / "gt", progress=False)
    assert list(per["id"]) == ["im0", "im1", "im2", "im3"]
    assert summ["n_images"] == 3 and summ["n_missing"] == 1 and summ["n_empty_gt"] == 1
    assert summ["auc_excluded"] == 1  # the missing (all-zero) map has no AUC
    assert bool(per.loc[1, "missing"]) and per.loc[1, "f1"] == 0.0 and np.isnan(per.loc[1, "auc"])
    assert np.isnan(per.loc[3, "f1"])  # empty mask: not scored
    f1s = []
    for i in (0, 2):
        pred = read_prob(root / "pred" / f"im{i}.png")
        g = truth[f"im{i}"].ravel()
        assert per.loc[i, "f1"] == pytest.approx(f1_score(g, pred.ravel() > 0.5))
        assert per.loc[i, "iou"] == pytest.approx(jaccard_score(g, pred.ravel() > 0.5))
        assert per.loc[i, "mcc"] == pytest.approx(matthews_corrcoef(g, pred.ravel() > 0.5))
        assert per.loc[i, "auc"] == pytest.approx(roc_auc_score(g, pred.ravel()))
        f1s.append(per.loc[i, "f1"])
    assert summ["f1"] == pytest.approx((f1s[0] + f1s[1] + 0.0) / 3)  # the missing map counts as 0


def test_size_mismatch_is_an_error_naming_the_file(tree):
    root, _ = tree
    write_prob(np.zeros((10, 10)), root / "pred" / "im2.png")
    with pytest.raises(WeaklocError, match=r"im2\.png.*never resized"):
        score_maps(root / "pred", root / "gt", progress=False)


def test_missing_folders_are_errors(tmp_path, tree):
    root, _ = tree
    with pytest.raises(WeaklocError, match="prediction folder not found"):
        score_maps(tmp_path / "nope", root / "gt", progress=False)
    with pytest.raises(WeaklocError, match="ground-truth folder not found"):
        score_maps(root / "pred", tmp_path / "nope", progress=False)


def test_cli_with_manifest_json_csv_and_suffix(tree, capsys):
    root, truth = tree
    # maps with the _prob.png suffix, as `weakloc localize` writes them
    for i in (0, 1, 2, 3):
        src = root / "pred" / f"im{i}.png"
        if src.exists():
            src.rename(root / "pred" / f"im{i}_prob.png")
    rows = []
    for i, split in zip(range(4), ["test", "test", "train", "test"], strict=False):
        rows.append({"id": f"im{i}", "split": split, "label": int(i != 3), "image": str(root / f"im{i}.jpg"),
                     "mask": str(root / "gt" / f"im{i}.png"), "width": 1, "height": 1, "source": "x"})
    rows.append({"id": "unk", "split": "test", "label": 1, "image": str(root / "unk.jpg"), "mask": "",
                 "width": 1, "height": 1, "source": "x"})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    js, cs = root / "out" / "s.json", root / "out" / "s.csv"
    rc = main(["score", str(root / "pred"), "--manifest", str(root / "manifest.csv"), "--split", "test",
               "--suffix", "_prob.png", "--json", str(js), "--csv", str(cs), "--quiet"])
    assert rc == 0
    summ = json.loads(js.read_text())
    for key in ("f1", "iou", "mcc", "auc", "best_f1", "n_images", "n_missing", "auc_excluded", "threshold"):
        assert key in summ
    assert set(summ["dataset_level"]) >= {"f1", "iou", "mcc", "auc", "best_f1"}
    assert len(summ["threshold_curve"]["thresholds"]) == 21 == len(summ["threshold_curve"]["f1"])
    # test split, manipulated, with mask: im0 and im1 (im2 is train, im3 authentic, unk has no mask)
    assert summ["n_images"] == 2 and summ["n_missing"] == 1
    per = pd.read_csv(cs)
    assert list(per.columns[:6]) == ["id", "f1", "iou", "mcc", "auc", "best_f1"]
    assert list(per["id"]) == ["im0", "im1"]
    assert "F1" in capsys.readouterr().out


def test_cli_threshold_and_bad_arguments(tree, capsys):
    root, _ = tree
    js = root / "t.json"
    assert main(["score", str(root / "pred"), str(root / "gt"), "--threshold", "0.3", "--json", str(js),
                 "--quiet"]) == 0
    assert json.loads(js.read_text())["threshold"] == 0.3
    assert main(["score", str(root / "pred"), "--quiet"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["score", str(root / "pred"), str(root / "gt"), "--threshold", "2", "--quiet"]) == 2
