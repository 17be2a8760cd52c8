"""Every metric of weakloc.metrics cross-checked against scikit-learn on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    jaccard_score,
    matthews_corrcoef,
    precision_recall_curve,
    recall_score,
    roc_auc_score,
)

from weakloc.errors import WeaklocError
from weakloc.metrics import (
    CURVE_THRESHOLDS,
    ScoreHistogram,
    f1_threshold_curve,
    image_metrics,
    pixel_metrics,
    summarize_localization,
)

SEEDS = [0, 1, 2, 3, 4]


def random_case(rng, shape=(24, 31), quantise=True):
    """A prediction in [0, 1] (8-bit quantised: many ties) and a non-empty, non-full mask."""
    h, w = shape
    gt = np.zeros(shape, bool)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    gt[y0:y0 + rng.integers(2, h // 2), x0:x0 + rng.integers(2, w // 2)] = True
    gt ^= rng.random(shape) < 0.05  # some scattered pixels too
    gt[0, 0], gt[-1, -1] = True, False
    signal = 0.35 * gt + rng.random(shape) * 0.8
    pred = np.clip(signal, 0, 1)
    if quantise:
        pred = (np.rint(pred * 255) / 255).astype(np.float32)
    return pred, gt


def sk_best_f1(gt, pred):
    p, r, _ = precision_recall_curve(gt.ravel(), pred.ravel())
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return f1.max()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("quantise", [True, False])
def test_pixel_metrics_match_sklearn(seed, quantise):
    rng = np.random.default_rng(seed)
    pred, gt = random_case(rng, quantise=quantise)
    for thr in (0.5, 0.3, 0.7):
        m = pixel_metrics(pred, gt, threshold=thr)
        binary = (pred > thr).ravel()
        assert m["f1"] == pytest.approx(f1_score(gt.ravel(), binary, zero_division=0))
        assert m["iou"] == pytest.approx(jaccard_score(gt.ravel(), binary, zero_division=0))
        assert m["mcc"] == pytest.approx(matthews_corrcoef(gt.ravel(), binary))
    assert m["auc"] == pytest.approx(roc_auc_score(gt.ravel(), pred.ravel()))
    assert m["best_f1"] == pytest.approx(sk_best_f1(gt, pred))
    # the oracle threshold really reaches the oracle F1 with the >= rule
    assert f1_score(gt.ravel(), pred.ravel() >= m["best_threshold"]) == pytest.approx(m["best_f1"])


def test_heavy_ties_auc_and_best_f1():
    rng = np.random.default_rng(7)
    gt = rng.random((40, 40)) < 0.3
    gt[0, 0], gt[0, 1] = True, False
    pred = rng.integers(0, 4, gt.shape) / 3.0 + 0.2 * gt * rng.integers(0, 2, gt.shape)
    pred = np.clip(pred, 0, 1)
    m = pixel_metrics(pred, gt)
    assert m["auc"] == pytest.approx(roc_auc_score(gt.ravel(), pred.ravel()))
    assert m["best_f1"] == pytest.approx(sk_best_f1(gt, pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_summary_means_and_dataset_level_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    cases = [random_case(rng, shape=(int(rng.integers(10, 30)), int(rng.integers(10, 30)))) for _ in range(6)]
    # an authentic image (empty mask) must be excluded from every pixel metric
    empty_pred = rng.random((12, 12)).astype(np.float32)
    hists = [ScoreHistogram.from_maps(p, g) for p, g in cases]
    hists.insert(2, ScoreHistogram.from_maps(empty_pred, np.zeros((12, 12), bool)))
    s = summarize_localization(hists, threshold=0.5)
    assert s["n_images"] == 6 and s["n_empty_gt"] == 1 and s["auc_excluded"] == 0
    f1s = [f1_score(g.ravel(), p.ravel() > 0.5) for p, g in cases]
    ious = [jaccard_score(g.ravel(), p.ravel() > 0.5) for p, g in cases]
    mccs = [matthews_corrcoef(g.ravel(), p.ravel() > 0.5) for p, g in cases]
    aucs = [roc_auc_score(g.ravel(), p.ravel()) for p, g in cases]
    bests = [sk_best_f1(g, p) for p, g in cases]
    for key, vals in zip(("f1", "iou", "mcc", "auc", "best_f1"), (f1s, ious, mccs, aucs, bests), strict=False):
        assert s[key] == pytest.approx(np.mean(vals)), key
    all_p = np.concatenate([p.ravel() for p, _ in cases])
    all_g = np.concatenate([g.ravel() for _, g in cases])
    d = s["dataset_level"]
    assert d["f1"] == pytest.approx(f1_score(all_g, all_p > 0.5))
    assert d["iou"] == pytest.approx(jaccard_score(all_g, all_p > 0.5))
    assert d["mcc"] == pytest.approx(matthews_corrcoef(all_g, all_p > 0.5))
    assert d["auc"] == pytest.approx(roc_auc_score(all_g, all_p))
    assert d["best_f1"] == pytest.approx(sk_best_f1(all_g, all_p))
    # threshold curve = per-image mean F1 at 0.00 .. 1.00
    curve = s["threshold_curve"]
    assert curve["thresholds"] == pytest.approx(list(CURVE_THRESHOLDS)) and len(curve["thresholds"]) == 21
    for t, f in zip(curve["thresholds"], curve["f1"], strict=False):
        exp = np.mean([f1_score(g.ravel(), p.ravel() > np.float32(t), zero_division=0) for p, g in cases])
        assert f == pytest.approx(exp), t


def test_threshold_on_exact_8bit_value_is_strict():
    # 51/255 == 0.2 exactly: "prob > 0.2" must not count it, even after a float32 round trip
    gt = np.array([[True, True, False, False]])
    pred = (np.array([[51, 52, 51, 0]]) / 255).astype(np.float32)
    curve = f1_threshold_curve([ScoreHistogram.from_maps(pred, gt)], thresholds=[0.2])
    assert curve["f1"][0] == pytest.approx(f1_score(gt.ravel(), [False, True, False, False]))
    # 128/255 > 0.5 and 127/255 is not: the write_prob convention
    pred = (np.array([[128, 127, 0, 0]]) / 255).astype(np.float32)
    assert pixel_metrics(pred, gt)["f1"] == pytest.approx(2 / 3)


def test_edge_cases():
    gt = np.zeros((8, 8), bool)
    gt[2:5, 2:5] = True
    # empty prediction: F1 = IoU = MCC = 0; AUC undefined (constant map), oracle = all-positive F1
    m = pixel_metrics(np.zeros((8, 8), np.float32), gt)
    assert (m["f1"], m["iou"], m["mcc"]) == (0.0, 0.0, 0.0)
    assert m["auc"] is None
    assert m["best_f1"] == pytest.approx(2 * 9 / (9 + 64))
    # full prediction: MCC 0 as in sklearn
    m = pixel_metrics(np.ones((8, 8)), gt)
    assert m["mcc"] == matthews_corrcoef(gt.ravel(), np.ones(64, bool)) == 0.0
    # mask covering the whole image: AUC undefined, F1 defined
    m = pixel_metrics(np.linspace(0, 1, 64).reshape(8, 8), np.ones((8, 8), bool))
    assert m["auc"] is None and m["f1"] == pytest.approx(f1_score(np.ones(64), np.linspace(0, 1, 64) > 0.5))
    # perfect map
    m = pixel_metrics(gt.astype(np.float32), gt)
    assert m["f1"] == m["iou"] == m["mcc"] == m["auc"] == m["best_f1"] == 1.0
    # empty mask is refused by the per-image function, skipped and counted by the summary
    with pytest.raises(WeaklocError, match="empty"):
        pixel_metrics(np.zeros((8, 8)), np.zeros((8, 8), bool))
    with pytest.raises(WeaklocError, match="shape"):
        pixel_metrics(np.zeros((8, 9)), gt)


def test_constant_prediction_is_excluded_from_auc_and_counted():
    rng = np.random.default_rng(3)
    good = random_case(rng)
    const = (np.full((24, 31), 0.3, np.float32), good[1])
    s = summarize_localization([ScoreHistogram.from_maps(*good), ScoreHistogram.from_maps(*const)])
    assert s["auc_excluded"] == 1 and s["n_images"] == 2
    assert s["auc"] == pytest.approx(roc_auc_score(good[1].ravel(), good[0].ravel()))  # not averaged with 0.5
    assert s["f1"] == pytest.approx(f1_score(good[1].ravel(), good[0].ravel() > 0.5) / 2)


def test_summary_without_masked_images():
    s = summarize_localization([ScoreHistogram.from_maps(np.zeros((4, 4)), np.zeros((4, 4), bool))])
    assert s["n_images"] == 0 and s["n_empty_gt"] == 1 and s["f1"] is None
    assert s["dataset_level"]["auc"] is None and s["threshold_curve"]["f1"][0] is None


@pytest.mark.parametrize("seed", SEEDS)
def test_image_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    y[:2] = [0, 1]
    s = np.round(rng.random(60), 1)  # ties, and some exactly 0.5
    m = image_metrics(y, s)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, s > 0.5))
    assert m["f1"] == pytest.approx(f1_score(y, s > 0.5))
    assert m["n_images"] == 60 and m["n_positive"] == int(y.sum())


def test_image_metrics_one_class_and_bad_input():
    m = image_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["auc"] is None and "only manipulated" in m["auc_undefined"]
    assert m["accuracy"] == pytest.approx(2 / 3)
    m = image_metrics([0, 0], [0.1, 0.2])
    assert m["auc"] is None and m["f1"] == 0.0 and m["accuracy"] == 1.0
    with pytest.raises(WeaklocError, match="labels but"):
        image_metrics([0, 1], [0.5])
    with pytest.raises(WeaklocError, match="0 \\(authentic\\)"):
        image_metrics([0, 2], [0.5, 0.1])
    with pytest.raises(WeaklocError, match="NaN"):
        image_metrics([0, 1], [0.5, float("nan")])
    with pytest.raises(WeaklocError, match="no images"):
        image_metrics([], [])
    with pytest.raises(WeaklocError, match="probabilities"):
        image_metrics([0, 1], [-2.0, 3.0])  # logits are refused


def test_maps_outside_unit_range_are_refused():
    gt = np.ones((2, 2), bool)
    with pytest.raises(WeaklocError, match="probabilities in \\[0, 1\\]"):
        pixel_metrics(np.full((2, 2), 255.0), gt)
    with pytest.raises(WeaklocError, match="probabilities"):
        pixel_metrics(np.array([[0.1, np.nan], [0.2, 0.3]]), gt)


@pytest.mark.parametrize("seed", SEEDS)
def test_combined_f1_is_the_harmonic_mean_of_sklearn_pixel_and_image_f1(seed):
    from scipy.stats import hmean

    from weakloc.metrics import combined_f1

    rng = np.random.default_rng(seed)
    cases = [random_case(rng) for _ in range(4)]
    pixel = summarize_localization([ScoreHistogram.from_maps(p, g) for p, g in cases], 0.5)["f1"]
    sk_pixel = np.mean([f1_score(g.ravel(), p.ravel() > 0.5) for p, g in cases])
    labels = rng.integers(0, 2, 40)
    scores = np.clip(0.3 * labels + rng.random(40) * 0.7, 0, 1)
    m = image_metrics(labels, scores)
    assert m["f1"] == pytest.approx(f1_score(labels, scores > 0.5))
    sen, spe = recall_score(labels, scores > 0.5), recall_score(1 - labels, scores <= 0.5)
    assert m["recall"] == pytest.approx(sen) and m["specificity"] == pytest.approx(spe)
    assert m["image_f1"] == pytest.approx(hmean([sen, spe]))
    assert combined_f1(pixel, m["image_f1"]) == pytest.approx(hmean([sk_pixel, hmean([sen, spe])]))


def test_combined_f1_edge_cases():
    from weakloc.metrics import combined_f1, sensitivity_specificity_f1

    assert sensitivity_specificity_f1(0.0, 0.0) == 0.0 and sensitivity_specificity_f1(1.0, 0.0) == 0.0
    all_flagged = image_metrics([0, 1, 1], [0.9, 0.9, 0.9])  # no authentic image passed: image F1 0
    assert all_flagged["f1"] == pytest.approx(0.8) and all_flagged["image_f1"] == 0.0
    assert combined_f1(0.0, 0.0) == 0.0
    assert combined_f1(0.0, 0.9) == 0.0
    assert combined_f1(None, 0.5) is None and combined_f1(0.5, None) is None
    with pytest.raises(WeaklocError, match="combined_f1"):
        combined_f1(1.5, 0.5)
