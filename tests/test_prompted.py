"""CAM-prompted SAM (segmenters.sam_prompt): prompts from the map's peaks, the segmenter, its wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from factories import random_checkpoint, tiny_model_config
from weakloc.errors import WeaklocError
from weakloc.segmenters import MAP_PROMPTED, build_segmenter, masks_to_partition, settings_key
from weakloc.segmenters.prompted import map_prompts, soft_iou

REPO = Path(__file__).resolve().parents[1]


def test_prompts_sit_on_the_peaks_highest_first_with_boxes_around_them():
    c = np.full((120, 160), 0.2, np.float32)
    c[30:70, 80:140] = 0.9
    c[90:110, 10:30] = 0.6
    prompts = map_prompts(c, n_prompts=3, smooth=0.0)
    assert len(prompts) == 2
    (x, y), box = prompts[0]["point"], prompts[0]["box"]
    assert 80 <= x < 140 and 30 <= y < 70
    assert abs(x - 109.5) <= 1 and abs(y - 49.5) <= 1  # the middle of the plateau, not its corner
    x0, y0, x1, y1 = box
    assert x0 <= 80 and y0 <= 30 and x1 >= 140 and y1 >= 70 and x1 - x0 < 100
    (x, y) = prompts[1]["point"]
    assert 10 <= x < 30 and 90 <= y < 110
    assert prompts[0]["peak"] > prompts[1]["peak"]
    assert len(map_prompts(c, n_prompts=1, smooth=0.0)) == 1


def test_a_flat_map_gives_no_prompt():
    assert map_prompts(np.full((50, 50), 0.4, np.float32), n_prompts=3, smooth=0.01) == []


def test_soft_iou():
    m = np.zeros((4, 4), bool)
    m[:2] = True
    u = np.zeros((4, 4), np.float32)
    u[:2] = 1.0
    assert soft_iou(m, u) == 1.0
    u[:2, :2] = 0.5
    assert soft_iou(m, u) == pytest.approx(6 / 8)


def test_sam_prompt_is_map_prompted_and_refused_by_segment(tmp_path):
    from weakloc.segmenters.cache import segment_manifest

    assert "sam_prompt" in MAP_PROMPTED
    assert settings_key("sam_prompt", {"device": "cpu"}) == settings_key("sam_prompt", {})
    assert settings_key("sam_prompt", {"n_prompts": 5}) != settings_key("sam_prompt", {})
    with pytest.raises(WeaklocError, match="prompted by the coarse map"):
        segment_manifest(tmp_path / "m.csv", "test", "sam_prompt", {}, tmp_path / "out")


@pytest.fixture(scope="module")
def mobile_sam_weights() -> Path:
    from weakloc.segmenters.sam import fetch_mobile_sam

    try:
        return fetch_mobile_sam(REPO / "weights" / "mobile_sam.pt")
    except WeaklocError as exc:
        pytest.skip(f"MobileSAM weights unavailable: {exc}")


def test_real_prompted_sam_segments_the_prompted_object(mobile_sam_weights):
    rgb = np.asarray(Image.fromarray(data.coffee()).resize((160, 120), Image.BILINEAR))
    # the cup and saucer are the bright object in the middle: put the map's peak there
    c = np.full((120, 160), 0.1, np.float32)
    c[35:85, 50:110] = 0.9
    # encoder at 512 px, 4x cheaper (its agreement with 1024 px: tests/test_segmenters.py)
    seg = build_segmenter("sam_prompt", {"checkpoint": str(mobile_sam_weights), "device": "cpu", "n_prompts": 2,
                                         "encoder_size": 512})
    assert seg.needs_map
    masks = seg.masks(rgb, c)
    assert len(masks) == 1 and masks[0].shape == (120, 160) and masks[0].dtype == bool
    m = masks[0]
    assert m[60, 80] and 0.02 < m.mean() < 0.8  # covers the peak, not the whole image
    labels = seg(rgb, c)
    assert np.array_equal(labels, masks_to_partition(masks, (120, 160), 16))
    assert seg.masks(rgb, np.full((120, 160), 0.3, np.float32)) == []  # no peak, no prompt
    with pytest.raises(WeaklocError, match="differ in size"):
        seg.masks(rgb, c[:60])


def test_localizer_hands_the_fused_map_to_a_map_prompted_segmenter(tmp_path, monkeypatch):

    from weakloc.cams import block_maps
    from weakloc.fusion import fuse_with_config
    from weakloc.pipeline import Localizer
    from weakloc.wcbnet import load_checkpoint

    cfg = tiny_model_config()
    model, meta = load_checkpoint(random_checkpoint(tmp_path / "w.pt"))
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3)).astype(np.uint8)
    seen = []

    class Prompted:
        needs_map = True

        def __call__(self, image, coarse):
            seen.append(coarse.copy())
            part = np.zeros(image.shape[:2], np.int32)
            part[:, 32:] = 1
            return part

    monkeypatch.setattr("weakloc.segmenters.build_segmenter", lambda name, settings: Prompted())
    cfg["localize"]["regions"] = "all"  # segment whatever the verdict
    prob = Localizer.from_model(model, meta, cfg, segmenters=["sam_prompt"])(rgb).prob
    bm = block_maps(model, meta, rgb, cfg["cams"]["method"], cfg["cams"]["max_side"])
    assert len(seen) == 1 and np.allclose(seen[0], fuse_with_config(bm.maps, "attention", bm.weights, cfg))
    assert prob.shape == (48, 64)
