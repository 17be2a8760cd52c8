"""Classic baselines (pyIFD ELA, NOI1, BLK, DCT): shapes, ranges, ELA on a splice, the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

pytest.importorskip("pyIFD")

from weakloc.baselines import BASELINES, baseline_map, is_jpeg, robust_normalise, upsample_block_map  # noqa: E402
from weakloc.cli import main  # noqa: E402
from weakloc.errors import WeaklocError  # noqa: E402
from weakloc.io import read_prob  # noqa: E402


def _jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photograph with an odd size (not a multiple of 8 or 16): (75, 93, 3) uint8."""
    return np.ascontiguousarray(data.chelsea()[::3, ::3][:75, :93])


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_map_is_image_sized_float_in_unit_range(tmp_path, photo, name, fmt):
    path = tmp_path / ("img.jpg" if fmt == "JPEG" else "img.png")
    Image.fromarray(photo).save(path, format=fmt, **({"quality": 80} if fmt == "JPEG" else {}))
    m = baseline_map(name, path)
    assert m.shape == photo.shape[:2]
    assert m.dtype == np.float32
    assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0
    assert m.max() > m.min(), "a real photo should give a map with some spread"


def test_jpeg_is_recognised_by_content_not_name(tmp_path, photo):
    disguised = tmp_path / "photo.png"
    Image.fromarray(photo).save(disguised, format="JPEG", quality=85)
    real_png = tmp_path / "real.png"
    Image.fromarray(photo).save(real_png, format="PNG")
    assert is_jpeg(disguised) and not is_jpeg(real_png)
    assert baseline_map("dct", disguised).shape == photo.shape[:2]


def _spliced_jpeg(path: Path) -> np.ndarray:
    """Host JPEG-compressed twice at q=90, a block-aligned region pasted from another photo
    that was compressed at q=60, saved at q=90. Returns the (H, W) bool splice mask."""
    host = _jpeg_roundtrip(_jpeg_roundtrip(np.ascontiguousarray(data.astronaut()[::2, ::2]), 90), 90)
    donor = _jpeg_roundtrip(np.ascontiguousarray(data.coffee()[100:356, 200:456]), 60)
    img = host.copy()
    img[64:160, 96:192] = donor[64:160, 96:192]
    Image.fromarray(img).save(path, format="JPEG", quality=90)
    mask = np.zeros(img.shape[:2], dtype=bool)
    mask[64:160, 96:192] = True
    return mask


def test_ela_is_higher_inside_a_splice_with_another_jpeg_history(tmp_path):
    path = tmp_path / "spliced.jpg"
    mask = _spliced_jpeg(path)
    m = baseline_map("ela", path)
    inside, outside = float(m[mask].mean()), float(m[~mask].mean())
    assert inside > 2 * outside, (inside, outside)


def test_ela_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch, photo):
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "tmpResave.jpg").write_bytes(b"someone else's file")
    img = tmp_path / "img.png"
    Image.fromarray(photo).save(img)
    monkeypatch.chdir(work)
    baseline_map("ela", "../img.png")  # a relative path still resolves from the caller's directory
    assert sorted(p.name for p in work.iterdir()) == ["tmpResave.jpg"]
    assert (work / "tmpResave.jpg").read_bytes() == b"someone else's file"


def test_block_maps_align_with_the_8x8_grid():
    block = np.arange(12, dtype=float).reshape(3, 4)
    up = upsample_block_map(block, cell=8, offset=0, shape=(20, 30))
    assert up.shape == (20, 30)
    assert up[0, 0] == 0 and up[7, 7] == 0 and up[8, 0] == 4 and up[0, 8] == 1
    assert up[19, 29] == 11  # beyond the grid: the nearest edge cell
    shifted = upsample_block_map(block, cell=16, offset=-7, shape=(40, 40))
    assert shifted[8, 0] == 0 and shifted[9, 0] == 4


def test_robust_normalise_maps_percentiles_to_0_and_1():
    m = np.linspace(0, 1000, 9999).reshape(101, 99)
    out = robust_normalise(m, (1, 99))
    assert out.dtype == np.float32 and out.shape == m.shape
    assert out.min() == 0.0 and out.max() == 1.0
    assert abs(float(np.median(out)) - 0.5) < 1e-3
    assert (robust_normalise(np.full((8, 8), 7.0)) == 0).all(), "no spread: the detector flags nothing"
    with pytest.raises(WeaklocError, match="baseline_percentiles"):
        robust_normalise(m, (99, 1))


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(WeaklocError, match="unknown baseline 'cagi'"):
        baseline_map("cagi", tmp_path / "x.png")
    with pytest.raises(WeaklocError, match="missing.png"):
        baseline_map("ela", tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(WeaklocError, match="junk.png"):
        baseline_map("blk", junk)


def _manifest(tmp_path: Path, photo: np.ndarray) -> Path:
    root = tmp_path / "prepared"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, split in enumerate(["test", "test", "train"]):
        name = f"im{i}.jpg" if i % 2 == 0 else f"im{i}.png"
        Image.fromarray(np.roll(photo, 5 * i, axis=1)).save(root / "images" / name)
        rows.append({"id": f"im{i}", "split": split, "label": i % 2, "image": f"images/{name}", "mask": "",
                     "width": photo.shape[1], "height": photo.shape[0], "source": "test"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_cli_writes_one_map_per_split_image_and_resumes(tmp_path, photo, capsys):
    manifest = _manifest(tmp_path, photo)
    out = tmp_path / "baselines" / "noi1"
    argv = ["baseline", "noi1", "--manifest", str(manifest), "--split", "test", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png"]
    m = read_prob(out / "im0.png")
    assert m.shape == photo.shape[:2]
    np.testing.assert_allclose(m, baseline_map("noi1", tmp_path / "prepared/images/im0.jpg"), atol=0.5 / 255 + 1e-6)
    # resume: maps a killed run left in the work folder are kept when the fingerprint matches,
    # and the finished folder replaces the output; a rerun over a finished folder recomputes
    # nothing stale (the old output is replaced as a whole)
    import shutil

    from weakloc.io import partial_dir

    capsys.readouterr()
    work = partial_dir(out)
    shutil.copytree(out, work)
    (work / "im1.png").unlink()
    assert main(argv + ["--config-json", '{"evaluate": {}}']) == 0  # the fingerprint.json is missing: start over
    assert "2 maps written, 0 kept" in capsys.readouterr().err
    import weakloc.baselines as bl

    real = bl.baseline_map
    bl.baseline_map = lambda name, path, pct: (_ for _ in ()).throw(WeaklocError(f"{path}: simulated")) \
        if "im1" in str(path) else real(name, path, pct)
    try:
        assert main(argv) == 2
    finally:
        bl.baseline_map = real
    before = (work / "im0.png").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 maps written, 1 kept" in capsys.readouterr().err
    assert (out / "im0.png").read_bytes() == before and read_prob(out / "im1.png").shape == photo.shape[:2]


def test_cli_reports_a_missing_manifest(tmp_path, capsys):
    assert main(["baseline", "ela", "--manifest", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.csv" in capsys.readouterr().err
