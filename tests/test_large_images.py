"""Very large photos (issue #32): the full-size steps run over bands of rows and give the same
bytes as one pass over the whole map; the pipeline never computes a tiled image's whole SEL.

The bands are made small here by lowering ``weakloc.io.CHUNK_PIXELS`` (4 megapixels by default,
so that every image up to that size is one band, exactly as before)."""

import numpy as np
import pytest

import weakloc.io
from factories import photo, random_checkpoint
from weakloc.decision import DecisionSettings, calibrated_map
from weakloc.fusion import FUSION_METHODS, fuse
from weakloc.io import quantize_prob, row_chunks
from weakloc.localize import overlay
from weakloc.refinement import RefineSettings, refine_bayes

H, W = 83, 61
BAND = W * 7 + 5  # bands of 7 rows, the last one shorter


def _maps(seed=0, b=3):
    rng = np.random.default_rng(seed)
    return rng.random((b, H, W), dtype=np.float32)


def _partition(seed=0):
    yy, xx = np.mgrid[0:H, 0:W]
    return ((yy // 20) * 4 + xx // 16).astype(np.int32)


def test_row_chunks_cover_the_rows_once(monkeypatch):
    assert row_chunks(10, 7) == [(0, 10)]  # the default: small maps are one band
    monkeypatch.setattr(weakloc.io, "CHUNK_PIXELS", BAND)
    chunks = row_chunks(H, W)
    assert chunks[0] == (0, 7) and chunks[-1] == (77, 83) and len(chunks) == 12
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    monkeypatch.setattr(weakloc.io, "CHUNK_PIXELS", 3)
    assert row_chunks(4, 10) == [(0, 1), (1, 2), (2, 3), (3, 4)]  # at least one row a band


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_fusion_in_bands_equals_one_pass(monkeypatch, method):
    maps, weights = _maps(1), [0.2, 0.5, 0.3]
    whole = fuse(maps, method, weights=weights)
    monkeypatch.setattr(weakloc.io, "CHUNK_PIXELS", BAND)
    banded = fuse(maps, method, weights=weights)
    assert banded.dtype == np.float32
    np.testing.assert_array_equal(banded, whole)


@pytest.mark.parametrize("evidence,mode", [("contrast", "pixel"), ("coarse", "region"), ("map", "pixel")])
def test_refinement_decision_and_written_map_in_bands_equal_one_pass(monkeypatch, evidence, mode):
    maps = _maps(2) * np.float32(0.3)
    maps[:, 20:40, 16:32] += np.float32(0.6)  # a region that stands out, so the decision keeps a mask
    coarse, evidence_map, parts = maps[0], maps[1], [_partition(), _partition() // 3]
    settings = RefineSettings.from_section({"evidence": evidence, "mode": mode, "scale_by_score": True})
    decision = DecisionSettings.from_section({"rule": "calibrated", "mask_min_score": 0})

    def run():
        post = refine_bayes(coarse, parts, settings, image_prob=0.8, evidence_map=evidence_map)
        final = calibrated_map(post, parts[0], 0.8, decision)
        rgb = photo(H, W, 3)
        return post, final, quantize_prob(final), overlay(rgb, final)

    whole = run()
    monkeypatch.setattr(weakloc.io, "CHUNK_PIXELS", BAND)
    for a, b in zip(run(), whole, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert (whole[1] > 0.5).any()  # the decision kept a mask: the banded in-place arithmetic is exercised


def test_a_tiled_image_never_gets_its_whole_sel_in_the_pipeline(tmp_path, monkeypatch):
    """Above cams.max_side the read-ahead worker leaves the SEL to the tiles (weakloc.cams), and
    the result equals the one-stage-at-a-time reference."""
    from weakloc.pipeline import Localizer
    from weakloc.sel import SelSettings

    ckpt = random_checkpoint(tmp_path / "w.pt")
    rgb = photo(250, 400, 5)
    loc = Localizer(ckpt, overrides={"cams.max_side": 192, "segmenters.use": ["slic"], "localize.regions": "all"})
    reference, _ = loc.localize(rgb)
    monkeypatch.setattr(SelSettings, "of", lambda self, x: pytest.fail(f"whole SEL of a {x.shape} image"))
    (_, result, shown), = list(loc.localize_many([rgb]))
    np.testing.assert_array_equal(result.prob, reference.prob)
    assert result.score == reference.score and shown.shape == rgb.shape
    small = photo(60, 80, 6)  # an image that runs whole still gets its SEL ahead, in one piece
    with pytest.raises(pytest.fail.Exception, match="whole SEL"):
        list(loc.localize_many([small]))
