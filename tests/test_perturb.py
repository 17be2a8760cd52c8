"""Perturbations of the robustness protocol (JPEG, blur, noise, resize) and the perturbed dataset."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from weakloc.errors import WeaklocError
from weakloc.io import read_mask, read_rgb, write_mask
from weakloc.manifest import read_manifest, write_manifest
from weakloc.perturb import (
    gaussian_blur,
    gaussian_noise,
    jpeg_bytes,
    level_name,
    noise_rng,
    parse_level,
    perturb_dataset,
    resize_pair,
)


def photo(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    base = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1) % 256
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def test_level_names_round_trip():
    assert level_name("resize", 0.5) == "resize-0.5" and level_name("jpeg", 70) == "jpeg-70"
    assert parse_level("blur-7") == ("blur", 7.0) and parse_level("resize-0.75") == ("resize", 0.75)
    with pytest.raises(WeaklocError, match="not a perturbation level"):
        parse_level("crop-3")


@pytest.mark.parametrize("k", [3, 7, 23])
def test_blur_matches_opencv(k):
    cv2 = pytest.importorskip("cv2")
    rgb = photo()
    ours = gaussian_blur(rgb, k).astype(int)
    ref = cv2.GaussianBlur(rgb, (k, k), 0).astype(int)
    assert np.abs(ours - ref).max() <= 1  # rounding of OpenCV's fixed-point 8-bit path


def test_blur_refuses_even_kernels():
    with pytest.raises(WeaklocError, match="odd integer"):
        gaussian_blur(photo(), 4)


def test_noise_has_the_given_variance_and_is_seeded():
    rgb = np.full((200, 200, 3), 128, np.uint8)
    a = gaussian_noise(rgb, 15, noise_rng(0, "x")).astype(float)
    assert np.var(a - 128) == pytest.approx(15 + 1 / 12, rel=0.05)  # + the rounding's variance
    assert np.array_equal(gaussian_noise(rgb, 15, noise_rng(0, "x")), a.astype(np.uint8))
    assert not np.array_equal(gaussian_noise(rgb, 15, noise_rng(0, "y")), a.astype(np.uint8))


def test_jpeg_is_pillows_encoding_at_that_quality():
    rgb = photo()
    data = jpeg_bytes(rgb, 60)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=60, subsampling=2)
    assert data == buf.getvalue()
    assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_resize_keeps_image_and_mask_aligned():
    rgb = photo(40, 60)
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    img, msk = resize_pair(rgb, mask, 0.5)
    assert img.shape == (20, 30, 3) and msk.shape == (20, 30)
    assert msk[5:15, 10:20].all() and msk.sum() == 100
    img, msk = resize_pair(rgb, mask, 0.75)
    assert img.shape[:2] == msk.shape == (30, 45)


def make_prepared(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for i, label in enumerate([0, 1, 1, 1]):
        rgb = photo(seed=i)
        Image.fromarray(rgb).save(root / "images" / f"im{i}.jpg", quality=90)
        mask = np.zeros(rgb.shape[:2], bool)
        if label:
            mask[8:24, 8:40] = True
        write_mask(mask, root / "masks" / f"im{i}.png")
        rows.append({"id": f"im{i}", "split": "test" if i < 3 else "train", "label": label,
                     "image": f"images/im{i}.jpg", "mask": f"masks/im{i}.png", "width": 64, "height": 48,
                     "source": "t"})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    return root / "manifest.csv"


@pytest.mark.parametrize("name", ["jpeg-50", "blur-7", "noise-3", "resize-0.5"])
def test_perturbed_dataset_holds_the_masked_manipulated_test_images(tmp_path, name):
    manifest = make_prepared(tmp_path / "prep")
    out = tmp_path / "pert" / name
    assert perturb_dataset(manifest, "test", name, out, seed=0) == 2
    df = read_manifest(out / "manifest.csv")
    assert list(df["id"]) == ["im1", "im2"] and set(df["split"]) == {"test"} and set(df["label"]) == {1}
    for row in df.itertuples():
        rgb, mask = read_rgb(row.image), read_mask(row.mask)
        assert rgb.shape[:2] == mask.shape == (row.height, row.width)
        assert Image.open(row.image).format == ("JPEG" if name.startswith("jpeg") else "PNG")
    if name.startswith("resize"):
        assert (df["width"] == 32).all()
    assert not any(p.name.startswith(".") for p in (tmp_path / "pert").iterdir())


def test_perturbed_dataset_needs_manipulated_images(tmp_path):
    manifest = make_prepared(tmp_path / "prep")
    with pytest.raises(WeaklocError, match="no manipulated image"):
        perturb_dataset(manifest, "val", "jpeg-70", tmp_path / "out")
