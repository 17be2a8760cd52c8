"""Bayesian refinement (METHOD.md step 6) against hand-computed numbers."""

import numpy as np
import pytest
from skimage.segmentation import felzenszwalb, slic

from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.refinement import RefineSettings, evidence_map_from_blocks, refine_bayes, refine_with_config


def _refine(coarse, partitions, image_prob=None, evidence_map=None, **settings):
    """refine_bayes with the schema's refine defaults, but evidence = coarse (METHOD.md as written,
    what the hand-computed numbers below assume) unless a call gives another."""
    section = RefineSettings.from_section({"evidence": "coarse", **settings})
    return refine_bayes(coarse, partitions, section, image_prob=image_prob, evidence_map=evidence_map)


# Coarse map and two partitions of a 2x2 image.
C = np.array([[0.8, 0.6], [0.2, 0.2]], dtype=np.float32)
ROWS = np.array([[0, 0], [1, 1]], dtype=np.int32)
COLS = np.array([[0, 1], [0, 1]], dtype=np.int32)
# Rows, Beta(1, 1): region 0: s = 1.4, n = 2, rho = 2.4 / 4 = 0.6; region 1: s = 0.4, rho = 1.4 / 4 = 0.35.
# Columns: col 0: s = 1.0, rho = 2 / 4 = 0.5; col 1: s = 0.8, rho = 1.8 / 4 = 0.45.
# With pi = 0.5 the posterior odds are odds(C) * odds(rho), e.g. pixel (0, 0): 4 * 1.5 = 6 -> 6/7.


def test_hand_computed_single_segmenter():
    expected = np.array([[6 / 7, 0.36 / 0.52], [0.07 / 0.59, 0.07 / 0.59]])
    np.testing.assert_allclose(_refine(C, [ROWS]), expected, rtol=1e-5)


def test_two_segmenters_combine_as_independent_evidence():
    # pixel (0, 0): 4 * 1.5 * 1.0 = 6 -> 6/7; pixel (1, 1): 0.25 * (0.35/0.65) * (0.45/0.55)
    odds11 = 0.25 * (0.35 / 0.65) * (0.45 / 0.55)
    out = _refine(C, [ROWS, COLS])
    assert out[0, 0] == pytest.approx(6 / 7, rel=1e-5)
    assert out[1, 1] == pytest.approx(odds11 / (1 + odds11), rel=1e-5)


def test_base_rate_term():
    # pi = 0.25: odds 4 * 1.5 / (1/3) = 18 -> 18/19; with two segmenters the term counts twice.
    assert _refine(C, [ROWS], base_rate=0.25)[0, 0] == pytest.approx(18 / 19, rel=1e-5)
    assert _refine(C, [ROWS, COLS], base_rate=0.25)[0, 0] == pytest.approx(54 / 55, rel=1e-5)


def test_beta_prior_and_evidence_weight():
    # a = b = 10: rho_0 = 11.4 / 22; lambda = 0 leaves the (clipped) coarse map.
    rho = 11.4 / 22
    odds = 4 * rho / (1 - rho)
    assert _refine(C, [ROWS], prior_a=10, prior_b=10)[0, 0] == pytest.approx(odds / (1 + odds), rel=1e-5)
    np.testing.assert_allclose(_refine(C, [ROWS], evidence_weight=0), C, rtol=1e-5)
    # lambda = 2 squares the evidence odds: 4 * 1.5**2 = 9 -> 0.9
    assert _refine(C, [ROWS], evidence_weight=2)[0, 0] == pytest.approx(0.9, rel=1e-5)


def test_region_mode_gives_each_pixel_its_regions_posterior():
    np.testing.assert_allclose(_refine(C, [ROWS], mode="region"), [[0.6, 0.6], [0.35, 0.35]], rtol=1e-5)
    # Two segmenters: odds(rho_rows) * odds(rho_cols); pixel (0, 1): 1.5 * (0.45/0.55)
    odds = 1.5 * 0.45 / 0.55
    assert _refine(C, [ROWS, COLS], mode="region")[0, 1] == pytest.approx(odds / (1 + odds), rel=1e-5)


def test_region_mode_snaps_the_mask_to_regions():
    rng = np.random.default_rng(0)
    part = (np.arange(64)[:, None] // 16 * 4 + np.arange(64)[None, :] // 16).astype(np.int32)
    coarse = rng.random((64, 64)).astype(np.float32)
    out = _refine(coarse, [part], mode="region")
    for r in range(16):
        assert np.ptp(out[part == r]) == 0


def test_scale_by_score_multiplies_by_the_image_probability():
    base = _refine(C, [ROWS])
    np.testing.assert_allclose(_refine(C, [ROWS], scale_by_score=True, image_prob=0.5), base * 0.5, rtol=1e-6)
    np.testing.assert_allclose(_refine(C, [ROWS], scale_by_score=False, image_prob=0.1), base, rtol=1e-6)


def test_clip_keeps_extreme_maps_finite():
    coarse = np.array([[0.0, 1.0], [np.nan, 0.5]], dtype=np.float32)
    out = _refine(coarse, [ROWS], clip=0.01, evidence_weight=0)
    np.testing.assert_allclose(out, [[0.01, 0.99], [0.01, 0.5]], rtol=1e-5)


def test_contrast_evidence_suppresses_a_raised_background():
    # A 4x4 map whose background sits at 0.6 (over-predicted) with a 2x2 block at 0.9.
    coarse = np.full((4, 4), 0.6, dtype=np.float32)
    coarse[:2, :2] = 0.9
    part = np.ones((4, 4), dtype=np.int32)
    part[:2, :2] = 0
    # background level t = 0.6: block counts (0.9 - 0.6) / 0.4 = 0.75 each -> rho = 4 / 6;
    # background counts 0 -> rho = 1 / 14. The pixel prior is read against t (odds 1.5):
    # background pixel odds 1.5 / 1.5 * (1/13) -> 1/14; block pixel odds 9 / 1.5 * 2 = 12 -> 12/13.
    out = _refine(coarse, [part], evidence="contrast", background_quantile=0.5)
    assert out[3, 3] == pytest.approx(1 / 14, rel=1e-4)
    assert out[0, 0] == pytest.approx(12 / 13, rel=1e-4)
    # An under-confident map (background 0.05, block 0.3) is lifted the same way.
    low = np.where(part == 0, 0.3, 0.05).astype(np.float32)
    out = _refine(low, [part], evidence="contrast", background_quantile=0.5)
    assert out[0, 0] > 0.5 and out[3, 3] < 0.1
    # As written, the background keeps rho = 8.2 / 14 and stays above 0.5.
    assert _refine(coarse, [part], evidence="coarse")[3, 3] > 0.5


def test_map_evidence_uses_the_given_map():
    ev = np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    # rho_0 = 3/4, rho_1 = 1/4: pixel (1, 0): 0.25 * (1/3) -> 1/13
    out = _refine(C, [ROWS], evidence="map", evidence_map=ev)
    assert out[1, 0] == pytest.approx(1 / 13, rel=1e-5)
    with pytest.raises(WeaklocError, match="needs an evidence map"):
        _refine(C, [ROWS], evidence="map")
    blocks = np.stack([ev, 1 - ev, ev])
    np.testing.assert_allclose(evidence_map_from_blocks(blocks, [1, 3]), ev)
    np.testing.assert_allclose(evidence_map_from_blocks(blocks, [-1]), ev)
    np.testing.assert_allclose(evidence_map_from_blocks(blocks, [-2]), 1 - ev)
    for bad in ([4], [-4], [0]):
        with pytest.raises(WeaklocError, match="evidence_blocks"):
            evidence_map_from_blocks(blocks, bad)


def _reference(coarse, partitions, a=1.0, b=1.0, pi=0.5, lam=1.0, clip=1e-3):
    """A direct, loop-based reading of METHOD.md step 6 (pixel mode, as written)."""
    c = np.clip(coarse.astype(np.float64), clip, 1 - clip)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    z = logit(c)
    for part in partitions:
        for r in np.unique(part):
            sel = part == r
            rho = (a + c[sel].sum()) / (a + b + sel.sum())
            z[sel] += lam * logit(rho)
    z -= len(partitions) * logit(pi)
    return 1 / (1 + np.exp(-z))


def test_matches_a_loop_reference_with_real_superpixels():
    rng = np.random.default_rng(4)
    img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    img[10:30, 20:50] = [200, 40, 40]
    parts = [slic(img, n_segments=30, start_label=0).astype(np.int32),
             felzenszwalb(img, scale=50).astype(np.int32)]
    coarse = rng.random((48, 64)).astype(np.float32)
    out = _refine(coarse, parts, prior_a=2, prior_b=3, base_rate=0.3, evidence_weight=0.7)
    ref = _reference(coarse, parts, a=2, b=3, pi=0.3, lam=0.7)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6)


def test_refine_with_config_reads_the_refine_section():
    cfg = validate_config({"refine": {"mode": "region", "evidence": "coarse"}})
    np.testing.assert_allclose(refine_with_config(C, [ROWS], cfg["refine"]), [[0.6, 0.6], [0.35, 0.35]], rtol=1e-5)
    cfg = validate_config({"refine": {"evidence": "map", "evidence_blocks": [1]}})
    with pytest.raises(WeaklocError, match="needs the block maps"):
        refine_with_config(C, [ROWS], cfg["refine"])


def test_bad_input_raises_one_line_errors():
    with pytest.raises(WeaklocError, match="partition 0 has shape"):
        _refine(C, [np.zeros((3, 3), np.int32)])
    with pytest.raises(WeaklocError, match="at least one partition"):
        _refine(C, [])
    with pytest.raises(WeaklocError, match="negative region ids"):
        _refine(C, [ROWS - 1])
    with pytest.raises(WeaklocError, match="integer region ids"):
        _refine(C, [ROWS.astype(float)])
    with pytest.raises(WeaklocError, match="base_rate"):
        _refine(C, [ROWS], base_rate=1.0)
    with pytest.raises(WeaklocError, match="no image-level probability"):
        _refine(C, [ROWS], scale_by_score=True)
    # settings are checked against the schema when the section is built (the schema holds the rules)
    with pytest.raises(WeaklocError, match=r"^key refine\.evidence: 'oracle' is not one of"):
        _refine(C, [ROWS], evidence="oracle")
    with pytest.raises(WeaklocError, match=r"^key refine\.mode: 'blend' is not one of"):
        _refine(C, [ROWS], mode="blend")
    with pytest.raises(WeaklocError, match=r"^key refine\.decision\.mask_min_score: 'always' is not valid"):
        _refine(C, [ROWS], decision={"mask_min_score": "always"})
    with pytest.raises(WeaklocError, match=r"^key refine\.prior_a: 0 is less than or equal to the minimum of 0"):
        _refine(C, [ROWS], prior_a=0)


def test_refine_settings_are_the_schema_section_and_fill_missing_keys_from_it():
    full = validate_config({})["refine"]
    settings = RefineSettings.from_section({"mode": "region"})
    assert settings.mode == "region" and settings.evidence == "contrast" and settings.background_quantile == 0.75
    assert settings.decision.rule == "threshold" and settings.decision.fraction_b == 10.0
    without_mode = {k: v for k, v in full.items() if k != "mode"}
    assert RefineSettings.from_section(without_mode) == RefineSettings.from_section(full)
    with pytest.raises(WeaklocError, match="unknown key refine.evidence_source"):
        RefineSettings.from_section({"evidence_source": "coarse"})
    # a mapping lacking evidence gets the schema's contrast, not METHOD.md's coarse
    coarse = np.full((4, 4), 0.6, dtype=np.float32)
    coarse[:2, :2] = 0.9
    part = np.where(np.arange(16).reshape(4, 4) % 4 < 2, 0, 1).astype(np.int32)
    part[2:] += 2
    assert refine_with_config(coarse, [part], {"mode": "pixel"})[3, 3] < 0.5
    assert _refine(coarse, [part])[3, 3] > 0.5
