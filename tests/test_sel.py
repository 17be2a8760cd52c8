"""Signed error level: shape, dtype, sign, scale, determinism, bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from weakloc.errors import WeaklocError
from weakloc.sel import JPEG_OPTIONS, recompress, signed_error_level


def _image(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_shape_dtype_and_channel_order_for_several_qualities():
    rgb = _image(37, 53)  # odd sizes: JPEG pads partial blocks, SEL keeps the image size
    sel = signed_error_level(rgb, [90, 75], 4.0)
    assert sel.shape == (6, 37, 53) and sel.dtype == np.float32
    np.testing.assert_array_equal(sel[3:], signed_error_level(rgb, [75], 4.0))
    np.testing.assert_array_equal(sel[:3], signed_error_level(rgb, [90], 4.0))


def test_sign_and_scale_match_the_definition():
    rgb = _image()
    rec = recompress(rgb, 80)
    expected = np.moveaxis(rgb.astype(np.float32) - rec.astype(np.float32), 2, 0) / 5.0
    sel = signed_error_level(rgb, [80], 5.0)
    np.testing.assert_allclose(sel, expected, rtol=0, atol=1e-6)
    assert (sel > 0).any() and (sel < 0).any()  # signed, not an absolute error level
    np.testing.assert_allclose(signed_error_level(rgb, [80], 1.0), 5.0 * sel, rtol=1e-6)


def test_known_case_flat_bright_image_has_zero_sel_and_recompress_uses_fixed_options():
    flat = np.full((16, 16, 3), 200, dtype=np.uint8)  # a flat image survives JPEG exactly
    assert np.all(signed_error_level(flat, [90], 8.0) == 0)
    rgb = _image(24, 24)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=70, **JPEG_OPTIONS)
    buf.seek(0)
    np.testing.assert_array_equal(recompress(rgb, 70), np.asarray(Image.open(buf).convert("RGB")))
    assert JPEG_OPTIONS["subsampling"] == 0  # 4:4:4, documented


def test_a_fresh_process_computes_the_same_bytes_and_the_input_is_untouched(tmp_path):
    """What training's SEL cache and the per-image steps rely on: no hidden state, no hash order."""
    rgb = _image()
    before = rgb.copy()
    here = signed_error_level(rgb, [90, 75], 8.0)
    np.testing.assert_array_equal(rgb, before)
    np.save(tmp_path / "rgb.npy", rgb)
    code = ("import sys, numpy as np; from weakloc.sel import signed_error_level; "
            "np.save(sys.argv[2], signed_error_level(np.load(sys.argv[1]), [90, 75], 8.0))")
    env = {**os.environ, "PYTHONHASHSEED": "123", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, tmp_path / "rgb.npy", tmp_path / "sel.npy"], env=env, check=True)
    there = np.load(tmp_path / "sel.npy")
    assert there.dtype == here.dtype and there.tobytes() == here.tobytes()


def test_a_jpeg_at_the_same_quality_has_a_smaller_sel_than_an_uncompressed_image():
    rng = np.random.default_rng(1)
    smooth = np.asarray(
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((64, 64), Image.BICUBIC))
    once = recompress(smooth, 90)
    assert np.abs(signed_error_level(once, [90], 1.0)).mean() < np.abs(signed_error_level(smooth, [90], 1.0)).mean()


@pytest.mark.parametrize("rgb", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)])
def test_bad_input_is_a_weakloc_error(rgb):
    with pytest.raises(WeaklocError, match="expected an"):
        signed_error_level(rgb, [90], 1.0)


@pytest.mark.parametrize("sel,key", [({"qualities": []}, "qualities"), ({"qualities": [0]}, "qualities.0"),
                                     ({"scale": 0.0}, "scale")])
def test_sel_settings_outside_the_schema_name_the_key(sel, key):
    from weakloc.config import validate_config

    with pytest.raises(WeaklocError, match=rf"key sel\.{key}: "):  # the bounds are the schema's
        validate_config({"sel": sel})


@pytest.mark.parametrize("subsampling", [0, 2])  # the project's 4:4:4, and 4:2:0 (16 x 16 MCUs)
def test_a_window_equals_the_whole_images_sel_and_tiles_rebuild_it(monkeypatch, subsampling):
    """A very large image's SEL is computed per tile (weakloc.cams): each window must equal the
    whole image's SEL there, bit for bit, whatever its position."""
    from weakloc.sel import SelSettings

    monkeypatch.setitem(JPEG_OPTIONS, "subsampling", subsampling)
    settings = SelSettings(qualities=[95, 70], scale=8.0)
    rgb = _image(150, 133, seed=7)
    whole = settings.of(rgb)
    for rows, cols in [((0, 64), (0, 64)), ((32, 100), (48, 133)), ((8, 41), (5, 120)), ((96, 150), (0, 133)),
                       ((0, 150), (0, 133)), ((149, 150), (132, 133))]:
        np.testing.assert_array_equal(settings.window(rgb, rows, cols), whole[:, slice(*rows), slice(*cols)])
    stitched = np.zeros_like(whole)
    for y0 in range(0, 150, 48):  # 48 x 48 tiles, as block_maps would cut them
        for x0 in range(0, 133, 48):
            ys, xs = (y0, min(150, y0 + 48)), (x0, min(133, x0 + 48))
            stitched[:, slice(*ys), slice(*xs)] = settings.window(rgb, ys, xs)
    np.testing.assert_array_equal(stitched, whole)
    # what the window's grid alignment and context are for: a plain crop is not the same
    assert not np.array_equal(settings.of(np.ascontiguousarray(rgb[4:100, 4:100])), whole[:, 4:100, 4:100])


def test_a_window_outside_the_image_is_a_weakloc_error():
    from weakloc.sel import SelSettings

    with pytest.raises(WeaklocError, match="outside an image"):
        SelSettings(qualities=[90], scale=8.0).window(_image(), (0, 41), (0, 8))
