"""The per-image calibrated decision rule (refine.decision, src/weakloc/decision.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from weakloc.config import validate_config
from weakloc.decision import DecisionSettings, apply_decision, calibrated_map, choose_mask
from weakloc.errors import WeaklocError
from weakloc.io import read_prob, write_prob
from weakloc.refinement import refine_with_config


def _calibrated(**settings):
    """The calibrated rule's settings: the schema's defaults of refine.decision but for ``settings``."""
    return DecisionSettings.from_section({"rule": "calibrated", **settings})


def _grid_partition(h=40, w=40, cell=10) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy // cell) * (w // cell) + xx // cell).astype(np.int32)


def _map_with_object(rng, level_in=0.8, level_out=0.3, noise=0.03):
    m = np.clip(level_out + rng.normal(0, noise, (40, 40)), 0, 1).astype(np.float32)
    m[10:20, 10:30] = np.clip(level_in + rng.normal(0, noise, (10, 20)), 0, 1)
    truth = np.zeros((40, 40), bool)
    truth[10:20, 10:30] = True
    return m, truth


def test_region_rule_finds_the_object_even_when_the_whole_map_is_over_confident():
    rng = np.random.default_rng(0)
    m, truth = _map_with_object(rng, level_in=0.95, level_out=0.7)  # 0.5 would flag everything
    assert (m > 0.5).all()
    out = calibrated_map(m, _grid_partition(), 0.9, _calibrated())
    assert np.array_equal(out > 0.5, truth)


def test_pixel_rule_and_region_rule_agree_on_a_clean_map():
    rng = np.random.default_rng(1)
    m, truth = _map_with_object(rng)
    plain_otsu = _calibrated(unit="pixel", fraction_b=1.0, max_fraction=0.5)
    mask, info = choose_mask(m, None, plain_otsu)
    assert np.array_equal(mask, truth) and info["kept"] and abs(info["fraction"] - truth.mean()) < 1e-9


def test_written_map_thresholds_exactly_at_half_after_8_bit_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    m = rng.random((40, 40)).astype(np.float32)
    m[5:15, 5:15] += 0.6
    m = np.clip(m, 0, 1)
    s = _calibrated(min_contrast=0.0)
    mask, _ = choose_mask(m, _grid_partition(), s)
    out = calibrated_map(m, _grid_partition(), 1.0, s)
    assert mask.any() and np.array_equal(out > 0.5, mask)
    write_prob(out, tmp_path / "p.png")
    assert np.array_equal(read_prob(tmp_path / "p.png") > 0.5, mask)
    # inside each class the ranking of the input map is kept
    inside = out[mask]
    assert np.all(np.diff(inside[np.argsort(m[mask], kind="stable")]) >= 0)


def test_flat_map_and_low_image_probability_give_an_empty_mask():
    rng = np.random.default_rng(3)
    flat = np.clip(0.6 + rng.normal(0, 0.01, (40, 40)), 0, 1).astype(np.float32)
    assert not (calibrated_map(flat, _grid_partition(), 0.9, _calibrated()) > 0.5).any()
    m, _ = _map_with_object(rng)
    gated = calibrated_map(m, _grid_partition(), 0.2, _calibrated(mask_min_score=0.5))
    assert not (gated > 0.5).any()
    ungated = calibrated_map(m, _grid_partition(), 0.2, _calibrated(mask_min_score=0.0))
    assert (ungated > 0.5).any()
    with pytest.raises(WeaklocError, match="image-level probability"):
        calibrated_map(m, _grid_partition(), None, _calibrated(mask_min_score=0.5))


def test_verdict_gate_masks_only_images_the_checkpoints_operating_point_calls_manipulated():
    rng = np.random.default_rng(4)
    m, truth = _map_with_object(rng)
    verdict = _calibrated(mask_min_score="verdict")
    assert np.array_equal(calibrated_map(m, _grid_partition(), 0.71, verdict, image_threshold=0.7) > 0.5, truth)
    for prob in (0.7, 0.2):  # the verdict is score > threshold: at or below it, no mask
        assert not (calibrated_map(m, _grid_partition(), prob, verdict, image_threshold=0.7) > 0.5).any()
    # a number ignores the operating point
    assert (calibrated_map(m, _grid_partition(), 0.4, _calibrated(mask_min_score=0.3), image_threshold=0.7) > 0.5).any()
    with pytest.raises(WeaklocError, match="operating point"):
        calibrated_map(m, _grid_partition(), 0.9, verdict)
    cfg = validate_config({"refine": {"decision": {"mask_min_score": "verdict"}}})
    assert cfg["refine"]["decision"]["mask_min_score"] == "verdict"
    with pytest.raises(WeaklocError, match="mask_min_score"):
        validate_config({"refine": {"decision": {"mask_min_score": "always"}}})


def test_verdict_gate_reads_the_threshold_the_cams_step_recorded(tmp_path):
    """refine_folder takes the operating point from blocks.csv's threshold column (the checkpoint's)."""
    import pandas as pd

    from weakloc.refinement import refine_folder
    from weakloc.segmenters.partition import save_partition

    rng = np.random.default_rng(5)
    m, _ = _map_with_object(rng)
    cams, fused, seg = tmp_path / "cams", tmp_path / "fused", tmp_path / "seg"
    for d in (cams / "block1", fused, seg):
        d.mkdir(parents=True)
    rows = []
    for image_id, score in (("above", 0.8), ("below", 0.6)):
        write_prob(m, cams / "block1" / f"{image_id}.png")
        write_prob(m, fused / f"{image_id}.png")
        save_partition(_grid_partition(), seg / f"{image_id}.npz")
        rows.append({"id": image_id, "label": 1, "score": score, "threshold": 0.7, "w1": 1.0})
    pd.DataFrame(rows).to_csv(cams / "blocks.csv", index=False)
    cfg = validate_config({"refine": {"decision": {"rule": "calibrated", "mask_min_score": "verdict"}}})
    assert refine_folder(fused, [seg], cams, tmp_path / "out", cfg) == 2
    assert (read_prob(tmp_path / "out" / "above.png") > 0.5).any()
    assert not (read_prob(tmp_path / "out" / "below.png") > 0.5).any()
    pd.DataFrame(rows).drop(columns=["threshold"]).to_csv(cams / "blocks.csv", index=False)  # an older cams folder
    with pytest.raises(WeaklocError, match=r"blocks.csv: no threshold column .* rerun `weakloc cams`"):
        refine_folder(fused, [seg], cams, tmp_path / "out2", cfg)


def test_fraction_prior_prefers_the_smaller_of_two_plausible_masks():
    # three levels: a small very high core, a ring of medium, the rest low
    m = np.full((40, 40), 0.1, np.float32)
    m[0:20, :] = 0.5
    m[0:10, 0:10] = 0.9
    part = _grid_partition()
    flat_prior, _ = choose_mask(m, part, _calibrated(fraction_b=1.0, max_fraction=0.6))
    small_prior, _ = choose_mask(m, part, _calibrated(fraction_b=30.0, max_fraction=0.6))
    assert small_prior.sum() < flat_prior.sum()
    assert small_prior[0:10, 0:10].all()
    capped, _ = choose_mask(m, part, _calibrated(max_fraction=0.1))
    assert capped.mean() <= 0.1


def test_threshold_rule_is_the_identity_and_refine_with_config_applies_the_rule():
    rng = np.random.default_rng(4)
    m, truth = _map_with_object(rng, level_in=0.95, level_out=0.7)
    part = _grid_partition()
    assert apply_decision(m, [part], 0.9, {"rule": "threshold"}) is m
    cfg = validate_config({"refine": {"decision": {"rule": "calibrated"}}})["refine"]
    out = refine_with_config(m, [part], cfg, image_prob=0.9)
    plain = refine_with_config(m, [part], validate_config({})["refine"], image_prob=0.9)
    assert np.array_equal(out > 0.5, choose_mask(plain, part, DecisionSettings.from_section(cfg["decision"]))[0])
    assert validate_config({})["refine"]["decision"]["rule"] == "threshold"


def test_unknown_rule_or_unit_is_a_one_line_error():
    with pytest.raises(WeaklocError, match="refine.decision.rule"):
        DecisionSettings.from_section({"rule": "otsu"})
    with pytest.raises(WeaklocError, match="refine.decision.unit"):
        DecisionSettings.from_section({"unit": "superpixel"})


def test_with_rule_sets_only_the_rule_and_leaves_the_section_alone():
    from weakloc.config import validate_config
    from weakloc.decision import with_rule

    section = validate_config({"refine": {"decision": {"rule": "calibrated", "mask_min_score": 0.5}}})["refine"]
    before = json.dumps(section, sort_keys=True)
    out = with_rule(section, "threshold")
    assert out["decision"] == {**section["decision"], "rule": "threshold"} and out["decision"]["mask_min_score"] == 0.5
    assert {k: v for k, v in out.items() if k != "decision"} == {k: v for k, v in section.items() if k != "decision"}
    assert json.dumps(section, sort_keys=True) == before  # a copy: the config is not changed


def test_the_old_gate_names_say_their_new_names_and_old_checkpoints_are_translated(tmp_path):
    """refine.gate -> refine.scale_by_score, refine.decision.gate -> refine.decision.mask_min_score:
    a config with an old name is a one-line error naming both; a checkpoint that stored the old
    names (the released model, trained before the rename) runs with them translated."""
    from factories import random_checkpoint
    from weakloc.pipeline import Localizer
    from weakloc.refinement import RefineSettings

    with pytest.raises(WeaklocError, match=r"^my\.yaml: key refine\.decision\.gate was renamed "
                                           r"refine\.decision\.mask_min_score \(same meaning\)"):
        validate_config({"refine": {"decision": {"gate": 0.3}}}, "my.yaml")
    with pytest.raises(WeaklocError, match=r"^config: key refine\.gate was renamed refine\.scale_by_score"):
        validate_config({"refine": {"gate": True}})
    with pytest.raises(WeaklocError, match=r"key refine\.decision\.gate was renamed"):
        RefineSettings.from_section({"decision": {"gate": "verdict"}})
    old = {"refine": {"gate": True, "decision": {"rule": "calibrated", "gate": "verdict"}}}
    loc = Localizer(random_checkpoint(tmp_path / "old.pt", {"pipeline": old}), segmenters=[])
    assert loc.settings_source == "checkpoint"
    assert loc.refine_settings.scale_by_score is True and loc.refine_settings.decision.mask_min_score == "verdict"


def test_the_pipelines_own_segment_max_side_moved_to_the_segmenters(tmp_path):
    """localize.segment_max_side became segmenters.<name>.max_side (all but sam_prompt): a config with it
    is a one-line error naming the new keys; a checkpoint that stored it (the released model: null)
    keeps the segmenters' defaults for null and gives each of them a stored number."""
    from factories import random_checkpoint
    from weakloc.pipeline import Localizer
    from weakloc.segmenters import DOWNSCALED_SEGMENTERS

    with pytest.raises(WeaklocError, match=r"^config: key localize\.segment_max_side was renamed "
                                           r"segmenters\.slic\.max_side and segmenters\.felzenszwalb\.max_side and"):
        validate_config({"localize": {"segment_max_side": 512}})
    for stored, expected in ((None, 2048), (512, 512)):
        ckpt = random_checkpoint(tmp_path / f"{stored}.pt", {"pipeline": {"localize": {"segment_max_side": stored}}})
        loc = Localizer(ckpt, segmenters=[])
        assert "segment_max_side" not in loc.config["localize"]
        assert [loc.config["segmenters"][n]["max_side"] for n in DOWNSCALED_SEGMENTERS] == [expected] * 5
