"""Per-block activation maps (METHOD.md step 3) on a small, randomly initialised WCBnet."""

import numpy as np
import pytest
import torch

from weakloc.cams import block_maps, receptive_radius, upsample_cells
from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.wcbnet import build_wcbnet, model_sections


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    # stem_stride 1: block 1 at full resolution, so its map can be checked cell by cell.
    cfg = validate_config({"model": {"widths": [4, 8, 8], "token_dim": 8, "stem_stride": 1}})
    model = build_wcbnet(cfg).eval()
    return model, {"config": model_sections(cfg)}


def image(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["score", "gradcam"])
@pytest.mark.parametrize("hw", [(64, 64), (37, 101), (1, 1), (9, 8)])
def test_shapes_and_range(tiny, method, hw):
    model, meta = tiny
    bm = block_maps(model, meta, image(*hw), method=method)
    assert bm.maps.shape == (3, *hw) and bm.maps.dtype == np.float32
    assert bm.maps.min() >= 0.0 and bm.maps.max() <= 1.0
    assert bm.weights.shape == (3,) and bm.weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= bm.prob <= 1.0 and bm.block_probs.shape == (3,)


def test_score_maps_are_the_sigmoid_of_the_score_cells(tiny):
    model, meta = tiny
    rgb = image(32, 48, seed=1)
    bm = block_maps(model, meta, rgb)
    from weakloc.sel import signed_error_level

    sel = meta["config"]["sel"]
    with torch.no_grad():
        out = model(torch.from_numpy(signed_error_level(rgb, sel["qualities"], sel["scale"]))[None])
    # Block 1 is at full resolution: its map is exactly sigmoid(S_1); block 3 (stride 4) at
    # its cell centres (pixels 4j) equals sigmoid of the cell.
    np.testing.assert_allclose(bm.maps[0], torch.sigmoid(out.score_maps[0])[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(bm.maps[2][::4, ::4], torch.sigmoid(out.score_maps[2])[0, 0].numpy(), atol=1e-6)
    assert bm.prob == pytest.approx(float(torch.sigmoid(out.logit)[0]), abs=1e-6)
    np.testing.assert_allclose(bm.weights, out.block_weights[0].numpy(), atol=1e-6)


def test_gradcam_maps_are_scaled_to_their_peak(tiny):
    model, meta = tiny
    bm = block_maps(model, meta, image(48, 48, seed=2), method="gradcam")
    for m in bm.maps:
        assert m.max() == pytest.approx(1.0, abs=1e-6) or m.max() == 0.0


@pytest.mark.parametrize("score_context", [True, False])
def test_large_images_run_in_grid_aligned_tiles_with_the_same_result(score_context):
    # with score_context every cell is compared with the whole image's mean features
    torch.manual_seed(0)
    cfg = validate_config({"model": {"widths": [4, 8, 8], "token_dim": 8, "stem_stride": 1,
                                     "score_context": score_context}})
    model = build_wcbnet(cfg).eval()
    meta = {"config": model_sections(cfg)}
    rgb = image(300, 245, seed=3)
    whole = block_maps(model, meta, rgb, max_side=None)
    tiled = block_maps(model, meta, rgb, max_side=160)
    np.testing.assert_allclose(tiled.maps, whole.maps, atol=1e-5)
    assert tiled.prob == pytest.approx(whole.prob, abs=1e-5)
    np.testing.assert_allclose(tiled.weights, whole.weights, atol=1e-5)
    g = block_maps(model, meta, rgb, method="gradcam", max_side=160)
    assert g.maps.shape == (3, 300, 245) and g.prob == pytest.approx(whole.prob, abs=1e-5)


def test_upsampling_puts_cells_at_their_centres():
    cells = torch.tensor([[[[0.0, 1.0, 0.5]]]])  # one row of 3 cells, stride 4
    up = upsample_cells(cells, 4, (1, 11))[0, 0, 0].numpy()
    np.testing.assert_allclose(up, [0, 0.25, 0.5, 0.75, 1, 0.875, 0.75, 0.625, 0.5, 0.5, 0.5], atol=1e-6)


def test_receptive_radius_of_a_full_resolution_model():
    model = build_wcbnet(validate_config({"model": {"stem_stride": 1}}))
    assert receptive_radius(model) == 23


def test_bad_input(tiny):
    model, meta = tiny
    with pytest.raises(WeaklocError, match="unknown method"):
        block_maps(model, meta, image(8, 8), method="cam")
    with pytest.raises(WeaklocError, match="uint8 image"):
        block_maps(model, meta, np.zeros((8, 8)))


def test_a_patch_stem_model_keeps_exact_size_and_tiles_exactly():
    torch.manual_seed(1)
    cfg = validate_config({"model": {"widths": [4, 8, 8], "token_dim": 8, "stem_stride": 4}})
    model = build_wcbnet(cfg).eval()
    meta = {"config": model_sections(cfg)}
    rgb = image(303, 257, seed=5)
    whole = block_maps(model, meta, rgb, max_side=None)
    tiled = block_maps(model, meta, rgb, max_side=200)
    assert whole.maps.shape == (3, 303, 257)
    np.testing.assert_allclose(tiled.maps, whole.maps, atol=1e-5)
    assert tiled.prob == pytest.approx(whole.prob, abs=1e-5)


def test_upsampling_with_a_stem_offset():
    # stem of 4x4 patches: cell j is centred on pixel 4j + 1.5
    up = upsample_cells(torch.tensor([[[[0.0, 1.0]]]]), 4, (1, 8), offset=1.5)[0, 0, 0].numpy()
    np.testing.assert_allclose(up, [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1], atol=1e-6)


@pytest.mark.parametrize("stem_stride", [1, 4])
def test_a_tiled_image_computes_its_sel_per_tile_with_the_same_result(monkeypatch, stem_stride):
    """Above max_side the SEL is computed tile by tile (never for the whole image): the maps are
    exactly those of a tiled pass given the whole image's SEL."""
    from weakloc.cams import runs_tiled
    from weakloc.sel import SelSettings

    torch.manual_seed(2)
    cfg = validate_config({"model": {"widths": [4, 8, 8], "token_dim": 8, "stem_stride": stem_stride,
                                     "score_context": True}})
    model = build_wcbnet(cfg).eval()
    meta = {"config": model_sections(cfg)}
    rgb = image(301, 250, seed=4)
    given = block_maps(model, meta, rgb, max_side=200, sel=SelSettings.from_section(meta["config"]["sel"]).of(rgb))
    whole_sel_calls = []
    monkeypatch.setattr(SelSettings, "of", lambda self, x: whole_sel_calls.append(x.shape))
    per_tile = block_maps(model, meta, rgb, max_side=200)
    assert whole_sel_calls == [] and runs_tiled(301, 250, 200) and not runs_tiled(301, 250, 301)
    np.testing.assert_array_equal(per_tile.maps, given.maps)
    assert per_tile.prob == given.prob
    np.testing.assert_array_equal(per_tile.weights, given.weights)


def test_maps_upsampled_in_bands_of_rows_equal_the_whole_map(tiny, monkeypatch):
    import weakloc.io

    model, meta = tiny
    rgb = image(61, 47, seed=6)
    whole = block_maps(model, meta, rgb)
    monkeypatch.setattr(weakloc.io, "CHUNK_PIXELS", 47 * 5 + 3)  # bands of 5 rows, the last one shorter
    np.testing.assert_array_equal(block_maps(model, meta, rgb).maps, whole.maps)
