"""The peer refinement rules (EdgeCAM-style vote, SEPL-style selection) on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from weakloc.config import section_defaults, validate_config
from weakloc.errors import WeaklocError
from weakloc.io import read_prob, write_prob
from weakloc.peer_rules import apply_peer_rule, edgecam_vote, peer_segmenter, regions_to_map, sepl_select

EDGECAM = {k: v for k, v in section_defaults("peer_rules.edgecam").items() if k != "segmenter"}
SEPL = {k: v for k, v in section_defaults("peer_rules.sepl").items() if k != "segmenter"}
"""The schema's settings of each rule (its defaults: the functions have none)."""


def four_quadrants(n=8):
    part = np.zeros((n, n), np.int32)
    h = n // 2
    part[:h, h:], part[h:, :h], part[h:, h:] = 1, 2, 3
    return part


def kept_regions(prob, part):
    return sorted(int(r) for r in np.unique(part[prob > 0.5]))


def test_edgecam_keeps_regions_voted_above_the_high_threshold():
    part = four_quadrants()
    c = np.full(part.shape, 0.2, np.float32)
    c[part == 0] = 0.9                      # every pixel votes
    c[:2, 4:] = 0.8                         # region 1: half its 16 pixels vote
    c[4:5, :4] = 0.95                       # region 2: a quarter votes
    out = edgecam_vote(c, part, threshold=0.7, min_vote=0.5, top_k=None)
    assert kept_regions(out, part) == [0, 1]
    assert kept_regions(edgecam_vote(c, part, threshold=0.7, min_vote=0.5, top_k=1), part) == [0]
    assert kept_regions(edgecam_vote(c, part, threshold=0.7, min_vote=0.25, top_k=None), part) == [0, 1, 2]


def test_edgecam_top_k_breaks_ties_by_region_size():
    part = np.zeros((4, 8), np.int32)
    part[:, 2:] = 1                          # region 0: 8 px, region 1: 24 px
    c = np.full(part.shape, 0.9, np.float32)
    assert kept_regions(edgecam_vote(c, part, **{**EDGECAM, "top_k": 1}), part) == [1]


def test_sepl_keeps_mostly_inside_or_covering_regions():
    part = four_quadrants()
    c = np.zeros(part.shape, np.float32)
    c[part == 0] = 0.8                       # region 0 entirely foreground
    c[4:6, 4:] = 0.7                         # region 3: exactly half foreground: not > 50 %
    out = sepl_select(c, part, **SEPL)
    assert kept_regions(out, part) == [0]
    # one large region holding 90 % of a small foreground is kept although mostly background
    part2 = np.zeros((10, 10), np.int32)
    part2[:, 9] = 1
    c2 = np.zeros((10, 10), np.float32)
    c2[0, :9] = 0.9
    c2[0, 9] = 0.9
    assert kept_regions(sepl_select(c2, part2, **SEPL), part2) == [0]   # covers 9/10 of the foreground
    assert kept_regions(sepl_select(c2, part2, **{**SEPL, "cover": 0.95}), part2) == []


def test_empty_foreground_gives_an_empty_mask():
    part = four_quadrants()
    c = np.full(part.shape, 0.3, np.float32)
    assert not (sepl_select(c, part, **SEPL) > 0.5).any()
    assert not (edgecam_vote(c, part, **EDGECAM) > 0.5).any()


def test_output_is_a_probability_map_whose_mask_survives_8bit(tmp_path):
    rng = np.random.default_rng(0)
    part = four_quadrants(16)
    c = rng.random(part.shape).astype(np.float32)
    c[0, 0], c[-1, -1] = 0.0, 1.0
    keep = np.array([True, False, True, False])
    out = regions_to_map(c, part, keep)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert ((out > 0.5) == keep[part]).all()
    write_prob(out, tmp_path / "m.png")
    assert ((read_prob(tmp_path / "m.png") > 0.5) == keep[part]).all()
    # order of the coarse map is kept inside the kept and the dropped pixels
    for group in (keep[part], ~keep[part]):
        a, b = c[group], out[group]
        assert (np.diff(b[np.argsort(a, kind="stable")]) >= -1e-6).all()


def test_config_dispatch_and_segmenter_choice():
    part = four_quadrants()
    c = np.where(part == 0, 0.9, 0.1).astype(np.float32)
    out = apply_peer_rule("sepl", c, part, {"segmenter": None, "foreground": 0.5, "inside": 0.5, "cover": 0.85})
    assert kept_regions(out, part) == [0]
    assert peer_segmenter("edgecam", {"segmenter": None}, ["sam", "slic"]) == "slic"
    assert peer_segmenter("sepl", {"segmenter": None}, ["sam", "slic"]) == "sam"
    assert peer_segmenter("sepl", {"segmenter": None}, ["slic", "felzenszwalb"]) == "slic"
    with pytest.raises(WeaklocError, match="peer_rules.sepl.segmenter"):
        peer_segmenter("sepl", {"segmenter": "deeplab"}, ["slic"])
    with pytest.raises(WeaklocError, match="unknown peer rule"):
        apply_peer_rule("magic", c, part, {})


def test_bad_input_is_refused():
    part = four_quadrants()
    with pytest.raises(WeaklocError, match="partition has shape"):
        edgecam_vote(np.zeros((4, 4)), part, **EDGECAM)
    with pytest.raises(WeaklocError, match="integer region ids"):
        sepl_select(np.zeros(part.shape), part.astype(float), **SEPL)
    with pytest.raises(WeaklocError, match=r"key peer_rules\.edgecam\.min_vote: 0 is less than or equal"):
        validate_config({"peer_rules": {"edgecam": {"min_vote": 0}}})  # the bounds are the schema's
