"""The synthetic generator's photo sources and region sources: a user's photo folder
(``dataset.synthetic.photos_dir``) and object-shaped regions (``region_source: objects``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from weakloc.config import validate_config
from weakloc.datasets import prepare_dataset
from weakloc.datasets.objects import ObjectSettings, object_region, photo_key, photo_partition, view_labels
from weakloc.datasets.synthetic import SyntheticSettings, generate_sample
from weakloc.errors import WeaklocError
from weakloc.manifest import read_manifest


def _flat_photo(seed: int, w: int = 200, h: int = 160) -> np.ndarray:
    """A photo of flat-coloured rectangles on a textured background: its objects are known."""
    rng = np.random.default_rng(seed)
    img = (rng.normal(120, 6, size=(h, w, 3))).clip(0, 255).astype(np.uint8)
    for _ in range(6):
        y0, x0 = int(rng.integers(0, max(1, h - 40))), int(rng.integers(0, max(1, w - 40)))
        img[y0:y0 + int(rng.integers(20, 40)), x0:x0 + int(rng.integers(20, 40))] = rng.integers(0, 255, size=3)
    return img


def _photo_folder(tmp_path, n=3, size=(200, 160)):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(_flat_photo(i, *size)).save(folder / f"cam{i}.png")
    return folder


# ----------------------------------------------------------------------------- photos_dir


def test_photos_dir_is_used_and_deterministic(tmp_path):
    folder = _photo_folder(tmp_path)
    s = SyntheticSettings.from_section(dict(n_images=12, size=64, photos_dir=str(folder)))
    samples = [generate_sample(i, 5, s) for i in range(12)]
    assert [generate_sample(i, 5, s).data for i in range(12)] == [x.data for x in samples]
    assert all(x.recipe.split(";")[0] in {f"photo=cam{i}.png" for i in range(3)} for x in samples)
    assert any("donor=cam" in x.recipe for x in samples)
    # the package photos give other images
    default = SyntheticSettings.from_section(dict(n_images=12, size=64))
    assert all(generate_sample(i, 5, default).data != samples[i].data for i in range(12))


def test_photos_dir_change_of_a_photo_changes_the_images(tmp_path):
    folder = _photo_folder(tmp_path)
    s = SyntheticSettings.from_section(dict(n_images=6, size=64, photos_dir=str(folder)))
    before = [generate_sample(i, 0, s).data for i in range(6)]
    Image.fromarray(_flat_photo(99)).save(folder / "cam0.png")
    after = [generate_sample(i, 0, s).data for i in range(6)]
    assert before != after


def test_photos_dir_through_prepare(tmp_path):
    folder = _photo_folder(tmp_path)
    cfg = validate_config({"dataset": {"name": "synthetic", "synthetic": {"n_images": 8, "size": 64,
                                                                        "photos_dir": str(folder)}}})
    df = read_manifest(prepare_dataset(cfg, tmp_path / "out", progress=False))
    assert len(df) == 8 and df["source"].str.contains("photo=cam").all()


def test_photos_dir_errors_name_the_file(tmp_path):
    folder = _photo_folder(tmp_path)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(WeaklocError, match=r"broken\.jpg"):
        generate_sample(0, 0, SyntheticSettings.from_section(dict(size=64, photos_dir=str(folder))))
    (folder / "broken.jpg").unlink()
    Image.fromarray(_flat_photo(7, 50, 40)).save(folder / "tiny.png")
    with pytest.raises(WeaklocError, match=r"tiny\.png: photo is 50x40, smaller than dataset\.synthetic\.size = 64"):
        generate_sample(0, 0, SyntheticSettings.from_section(dict(size=64, photos_dir=str(folder))))
    with pytest.raises(WeaklocError, match="not a folder"):
        generate_sample(0, 0, SyntheticSettings.from_section(dict(size=64, photos_dir=str(tmp_path / "missing"))))
    lone = tmp_path / "lone"
    lone.mkdir()
    Image.fromarray(_flat_photo(1)).save(lone / "a.png")
    with pytest.raises(WeaklocError, match="at least 2 photographs"):
        generate_sample(0, 0, SyntheticSettings.from_section(dict(size=64, photos_dir=str(lone))))


def test_photos_dir_schema_default_is_null():
    cfg = validate_config({})
    assert cfg["dataset"]["synthetic"]["photos_dir"] is None
    assert cfg["dataset"]["synthetic"]["region_source"] == "shapes"


# ----------------------------------------------------------------------------- object regions


def test_object_region_is_a_union_of_whole_segments():
    rgb = _flat_photo(3)
    photo = Image.fromarray(rgb)
    settings = ObjectSettings(scale=200, min_size=20, work_side=400)
    labels = view_labels(photo_partition(photo, settings), photo.size, (0, 0, 200, 160), (200, 160), False)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(10):
        mask = object_region(labels, rgb, 0.05, (0.01, 0.3), rng)
        if mask is None:
            continue
        hits += 1
        assert 0.01 <= mask.mean() <= 0.3
        # every segment is either inside or outside (holes are filled, so count a segment
        # inside the filled region as inside)
        n = labels.max() + 1
        inside = np.bincount(labels.ravel(), weights=mask.ravel(), minlength=n)
        sizes = np.bincount(labels.ravel(), minlength=n)
        frac = inside / sizes
        assert np.all((frac < 1e-9) | (frac > 1 - 1e-9))
    assert hits >= 5


def test_view_labels_follow_crop_and_flip():
    labels = np.zeros((10, 20), dtype=np.int32)
    labels[:, 10:] = 1  # left half 0, right half 1 of a 40x20 photo partitioned at half size
    out = view_labels(labels, (40, 20), (20, 0, 40, 20), (8, 8), False)
    assert out.shape == (8, 8) and out.max() == 0  # the right half only: one region
    both = view_labels(labels, (40, 20), (0, 0, 40, 20), (16, 8), True)
    # flipped: the first columns come from the photo's right half
    assert both[0, 0] != both[0, -1] and len(np.unique(both)) == 2


def test_photo_partition_is_cached_by_content_and_settings(tmp_path):
    photo = Image.fromarray(_flat_photo(4))
    s1, s2 = ObjectSettings(scale=200, work_side=384), ObjectSettings(scale=400, work_side=384)
    a = photo_partition(photo, s1, cache_dir=tmp_path)
    assert photo_partition(photo, s1, cache_dir=tmp_path) is a  # computed once
    assert (tmp_path / f"{photo_key(photo, s1)}.npz").is_file()
    assert photo_key(photo, s1) != photo_key(photo, s2)
    other = Image.fromarray(_flat_photo(5))
    assert photo_key(other, s1) != photo_key(photo, s1)


def test_objects_region_source_makes_object_masks_deterministically(tmp_path):
    folder = _photo_folder(tmp_path, n=3, size=(200, 160))
    s = SyntheticSettings.from_section(dict(n_images=20, size=96, photos_dir=str(folder), region_source="objects",
                                            region_area=(0.02, 0.3)))
    samples = [generate_sample(i, 1, s) for i in range(20)]
    assert [generate_sample(i, 1, s).data for i in range(20)] == [x.data for x in samples]
    manip = [x for x in samples if x.label == 1]
    assert len(manip) == 10
    objects = [x for x in manip if "shape=object" in x.recipe]
    assert len(objects) >= 7  # the rest fell back to a shape
    assert all(0.02 <= x.mask.mean() <= 0.3 for x in manip)
    assert any("kind=copymove" in x.recipe for x in objects) and any("kind=splice" in x.recipe for x in objects)
    # the default source is unchanged by the new option
    shapes = SyntheticSettings.from_section(dict(n_images=20, size=96, photos_dir=str(folder), region_area=(0.02, 0.3)))
    assert all("shape=object" not in generate_sample(i, 1, shapes).recipe for i in range(20))
