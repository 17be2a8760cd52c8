"""Image, map and manifest I/O: atomic writes, exact threshold round trips, clear errors."""

import os
import stat

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, read_mask, read_prob, read_rgb, write_mask, write_prob, write_text_atomic
from weakloc.manifest import read_manifest, write_manifest


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_probability_maps_keep_the_half_threshold_exact(tmp_path):
    prob = np.array([[0.0, 0.499, 0.5, 0.5001, 0.502, 1.0]], dtype=np.float32)
    write_prob(prob, tmp_path / "p.png")
    back = read_prob(tmp_path / "p.png")
    # The documented rule: a stored map is > 0.5 exactly where its 8-bit value is >= 128.
    stored = np.asarray(Image.open(tmp_path / "p.png"))
    np.testing.assert_array_equal(back > 0.5, stored >= 128)
    assert np.abs(back - prob).max() <= 0.5 / 255 + 1e-6


def test_masks_round_trip(tmp_path):
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    write_mask(mask, tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "m.png")))) == {0, 255}


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_any_mode_reads_as_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (9, 11, 3), dtype=np.uint8))
    img = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    img.save(path)
    rgb = read_rgb(path)
    assert rgb.shape == (9, 11, 3) and rgb.dtype == np.uint8


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(WeaklocError, match="notes.jpg"):
        read_rgb(bad)
    with pytest.raises(WeaklocError, match="missing.png: file not found"):
        read_rgb(tmp_path / "missing.png")


def test_manifest_paths_are_relative_on_disk_and_absolute_in_memory(tmp_path):
    (tmp_path / "images").mkdir()
    df = pd.DataFrame([
        {"id": "a", "split": "test", "label": 1, "image": str(tmp_path / "images/a.png"),
         "mask": str(tmp_path / "masks/a.png"), "width": 4, "height": 3, "source": "s"},
        {"id": "b", "split": "train", "label": 0, "image": str(tmp_path / "images/b.jpg"),
         "mask": "", "width": 4, "height": 3, "source": "s"},
    ])
    write_manifest(df, tmp_path / "manifest.csv")
    on_disk = pd.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert list(on_disk["image"]) == ["images/a.png", "images/b.jpg"]
    back = read_manifest(tmp_path / "manifest.csv", split="test")
    assert list(back["id"]) == ["a"] and back["image"][0] == str(tmp_path / "images/a.png")
    assert read_manifest(tmp_path / "manifest.csv")["mask"][1] == ""
    with pytest.raises(WeaklocError, match="unknown split"):
        read_manifest(tmp_path / "manifest.csv", split="dev")


def test_prepare_writes_paths_relative_to_the_manifest_from_any_working_directory(tmp_path, monkeypatch):
    from weakloc.config import validate_config
    from weakloc.datasets import prepare_dataset

    monkeypatch.chdir(tmp_path)
    cfg = validate_config({"dataset": {"synthetic": {"n_images": 4, "size": 64}}})
    prepare_dataset(cfg, "out/prepared", progress=False)
    on_disk = pd.read_csv(tmp_path / "out/prepared/manifest.csv", keep_default_na=False)
    assert all(p.startswith("images/") for p in on_disk["image"])
    assert all(p.startswith("masks/") for p in on_disk["mask"])


def test_staged_dir_replaces_the_folder_only_when_complete_and_keeps_the_usual_permissions(tmp_path):
    from weakloc.io import staged_dir

    out = tmp_path / "prepared"
    with staged_dir(out) as tmp:
        (tmp / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    with pytest.raises(RuntimeError), staged_dir(out) as tmp:
        (tmp / "b.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # the old folder, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no staging folder left
