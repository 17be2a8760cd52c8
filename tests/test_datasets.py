"""Datasets: registry, synthetic generator, preparation checks, splits, public layouts."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from weakloc.cli import main
from weakloc.config import load_schema, validate_config
from weakloc.datasets import DATASETS, assign_splits, prepare_dataset
from weakloc.datasets.public import columbia_mask
from weakloc.datasets.synthetic import SyntheticSettings, generate_sample, jpeg_roundtrip, region_mask, sample_kind
from weakloc.errors import WeaklocError
from weakloc.io import read_mask, read_rgb
from weakloc.manifest import read_manifest


def _config(**dataset) -> dict:
    return validate_config({"dataset": dataset})


def _small_synthetic(n=12, seed=0, **extra) -> dict:
    syn = {"n_images": n, "size": 64, **extra}
    return _config(name="synthetic", seed=seed, synthetic=syn)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- registry


def test_registry_matches_schema_and_describes_every_dataset():
    enum = load_schema()["properties"]["dataset"]["properties"]["name"]["enum"]
    assert sorted(DATASETS) == sorted(enum)
    for name in ("casia2", "casia1", "columbia", "coverage"):
        spec = DATASETS[name]
        assert spec.collect is not None and spec.licence and spec.citation and spec.homepage.startswith("https://")
        assert "weakloc data download" in spec.manual
        for item in (*spec.downloads, *( [spec.masks_download] if spec.masks_download else [])):
            assert item.url.startswith("https://")
            assert item.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", item.sha256)
    assert DATASETS["casia2"].needs_masks_archive


# ----------------------------------------------------------------------------- synthetic generator


def test_synthetic_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = prepare_dataset(_small_synthetic(seed=3), tmp_path / "a", progress=False).parent
    b = prepare_dataset(_small_synthetic(seed=3), tmp_path / "b", progress=False).parent
    c = prepare_dataset(_small_synthetic(seed=4), tmp_path / "c", progress=False).parent
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    images = [k for k in da if k.startswith("images/")]
    assert sum(da.get(k) != dc.get(k) for k in images) >= len(images) - 1


def test_synthetic_earlier_images_do_not_depend_on_n_images():
    s8 = SyntheticSettings.from_section(dict(n_images=8, size=64))
    s20 = SyntheticSettings.from_section(dict(n_images=20, size=64))
    for i in range(8):
        assert generate_sample(i, 1, s8).data == generate_sample(i, 1, s20).data


def test_synthetic_labels_kinds_and_masks(tmp_path):
    cfg = _small_synthetic(n=40, seed=2, region_area=[0.02, 0.2], manipulated_fraction=0.5, copy_move_fraction=0.5)
    df = read_manifest(prepare_dataset(cfg, tmp_path / "syn", progress=False))
    assert len(df) == 40 and int(df["label"].sum()) == 20
    half = SyntheticSettings.from_section({"manipulated_fraction": 0.5, "copy_move_fraction": 0.5})
    kinds = [sample_kind(i, half) for i in range(40)]
    assert kinds.count("copymove") == 10 and kinds.count("splice") == 10
    for _, row in df.iterrows():
        rgb, mask = read_rgb(row["image"]), read_mask(row["mask"])
        assert rgb.shape == (64, 64, 3) and mask.shape == (64, 64)
        if row["label"] == 1:
            assert 0.02 <= mask.mean() <= 0.2, (row["id"], mask.mean())
            assert "kind=splice" in row["source"] or "kind=copymove" in row["source"]
        else:
            assert not mask.any() and "kind=authentic" in row["source"]
    assert set(Path(p).suffix for p in df["image"]) <= {".jpg", ".png"}


def test_synthetic_histories_match_between_classes():
    """Final format and double compression occur in both classes, so neither gives the label away."""
    s = SyntheticSettings.from_section(dict(n_images=160, size=64))
    recipes = {0: [], 1: []}
    for i in range(160):
        smp = generate_sample(i, 0, s)
        recipes[smp.label].append(smp.recipe)
    for label in (0, 1):
        assert any("final=png" in r for r in recipes[label]) and any("final=jpeg" in r for r in recipes[label])
        assert any("host2=" in r for r in recipes[label]) and any("host=uncompressed" in r for r in recipes[label])


def test_region_mask_area_is_exact_and_shapes_vary():
    rng = np.random.default_rng(0)
    for shape in ("blob", "ellipse", "polygon"):
        for area in (0.01, 0.1, 0.3):
            mask, info = region_mask(128, area, rng, shape)
            assert mask.sum() == round(area * 128 * 128) and info["shape"] == shape


def test_jpeg_grid_offset_moves_the_block_grid():
    """Recompressing on the same shifted grid changes little; on the unshifted grid, much more."""
    from weakloc.datasets.synthetic import source_images

    img = np.asarray(source_images()[0].resize((128, 128)))
    out = jpeg_roundtrip(img, 75, offset=(3, 5))
    assert out.shape == img.shape
    same = np.abs(jpeg_roundtrip(out, 75, offset=(3, 5)).astype(int) - out).mean()
    other = np.abs(jpeg_roundtrip(out, 75, offset=(0, 0)).astype(int) - out).mean()
    assert same < 0.7 * other


# ----------------------------------------------------------------------------- splits


def test_splits_are_stratified_and_stable_under_reordering():
    ids = [f"img{i:04d}" for i in range(400)]
    labels = [i % 4 == 0 for i in range(400)]
    labels = [int(v) for v in labels]
    fr = {"train": 0.7, "val": 0.15, "test": 0.15}
    splits = assign_splits(ids, labels, fr, seed=5)
    for label, n in ((0, 300), (1, 100)):
        got = [s for s, lab in zip(splits, labels, strict=True) if lab == label]
        assert got.count("train") == round(0.7 * n) and got.count("val") == round(0.15 * n)
    order = list(range(400))
    random.Random(0).shuffle(order)
    shuffled = assign_splits([ids[i] for i in order], [labels[i] for i in order], fr, seed=5)
    assert {ids[i]: s for i, s in zip(order, shuffled, strict=True)} == dict(zip(ids, splits, strict=True))
    other = assign_splits(ids, labels, fr, seed=6)
    assert other != splits
    # adding unrelated rows moves few existing ones
    more = assign_splits(ids + [f"new{i}" for i in range(10)], labels + [0] * 10, fr, seed=5)
    assert sum(a != b for a, b in zip(splits, more[:400], strict=True)) <= 20


# ----------------------------------------------------------------------------- folder + checks


def _jpeg(path: Path, size=(40, 32), seed=0, quality=85):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path, quality=quality)


def _mask(path: Path, size=(40, 32), box=(5, 5, 20, 20), mode="L", value=255):
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)


def test_folder_dataset_copies_jpeg_bytes_converts_others_and_keeps_unknown_masks(tmp_path):
    root = tmp_path / "mine"
    _jpeg(root / "authentic" / "a1.jpg", seed=1)
    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(root / "authentic" / "a2.tif")
    _jpeg(root / "manipulated" / "m1.jpg", seed=2)
    _mask(root / "masks" / "m1.png", mode="1")
    _jpeg(root / "manipulated" / "m2.jpg", seed=3)  # no mask: detection only
    cfg = _config(name="folder", folder={"path": str(root)})
    df = read_manifest(prepare_dataset(cfg, tmp_path / "out", progress=False)).set_index("id")
    assert Path(df.loc["a1", "image"]).read_bytes() == (root / "authentic" / "a1.jpg").read_bytes()
    assert df.loc["a2", "image"].endswith("a2.png")
    assert (read_rgb(df.loc["a2", "image"]) == 90).all()
    assert not read_mask(df.loc["a1", "mask"]).any()
    m1 = read_mask(df.loc["m1", "mask"])
    assert m1.sum() == 15 * 15 and set(np.unique(np.asarray(Image.open(df.loc["m1", "mask"])))) == {0, 255}
    assert df.loc["m2", "mask"] == "" and df.loc["m2", "label"] == 1
    assert (df["width"] == 40).all() and (df["height"] == 32).all()


def test_prepare_reports_every_bad_file_and_leaves_nothing(tmp_path):
    root = tmp_path / "mine"
    _jpeg(root / "authentic" / "good.jpg")
    (root / "authentic" / "broken.jpg").write_bytes(b"not a jpeg at all")
    _jpeg(root / "manipulated" / "m1.jpg")
    _mask(root / "masks" / "m1.png", size=(20, 20))  # wrong size
    _jpeg(root / "manipulated" / "m2.jpg")
    _mask(root / "masks" / "m2.png", value=0)  # empty mask for a manipulated image
    out = tmp_path / "prepared" / "mine"
    with pytest.raises(WeaklocError) as err:
        prepare_dataset(_config(name="folder", folder={"path": str(root)}), out, progress=False)
    msg = str(err.value)
    assert msg.splitlines()[0].startswith("dataset folder: 3 problem(s)")
    assert str(root / "authentic" / "broken.jpg") in msg
    assert str(root / "masks" / "m1.png") in msg and "20x20" in msg
    assert str(root / "masks" / "m2.png") in msg and "empty" in msg
    assert not out.exists() and list((tmp_path / "prepared").iterdir()) == []


def test_prepare_replaces_an_old_output_only_on_success(tmp_path):
    out = tmp_path / "syn"
    prepare_dataset(_small_synthetic(n=4), out, progress=False)
    before = _digest(out)
    with pytest.raises(WeaklocError):
        prepare_dataset(_config(name="folder", folder={"path": str(tmp_path / "missing")}), out, progress=False)
    assert _digest(out) == before


def test_missing_raw_folder_says_how_to_download(tmp_path):
    with pytest.raises(WeaklocError, match="weakloc data download coverage"):
        prepare_dataset(_config(name="coverage"), tmp_path / "out", raw_dir=tmp_path / "nope", progress=False)


# ----------------------------------------------------------------------------- public layouts


def _tif(path: Path, size=(40, 32), seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)


def _prepare_public(name, raw, tmp_path):
    df = read_manifest(prepare_dataset(_config(name=name), tmp_path / f"prep-{name}", raw_dir=raw, progress=False))
    return df.set_index("id")


def test_casia2_layout(tmp_path):
    raw = tmp_path / "raw" / "CASIA2.0_revised"
    _jpeg(raw / "Au" / "Au_ani_00001.jpg")
    _jpeg(raw / "Au" / "Au_txt_30029.jpg", seed=1)
    sp, cm = "Tp_D_CRN_S_N_cha00063_art00014_11818", "Tp_S_NRN_S_N_pla00005_pla00005_10937"
    _jpeg(raw / "Tp" / f"{sp}.jpg", seed=2)
    _tif(raw / "Tp" / f"{cm}.tif", seed=3)
    _mask(raw.parent / "CASIA 2 Groundtruth" / f"{sp}_gt.png")
    _mask(raw.parent / "CASIA 2 Groundtruth" / f"{cm}_gt.png", box=(0, 0, 10, 30))
    (raw / "Au" / "Thumbs.db").write_bytes(b"junk")  # not an image: ignored
    df = _prepare_public("casia2", tmp_path / "raw", tmp_path)
    assert sorted(df.index) == sorted(["Au_ani_00001", "Au_txt_30029", sp, cm])
    assert df.loc[sp, "label"] == 1 and df.loc["Au_ani_00001", "label"] == 0
    assert df.loc[sp, "image"].endswith(".jpg") and df.loc[cm, "image"].endswith(".png")
    assert read_mask(df.loc[cm, "mask"]).sum() == 10 * 30
    assert "splice" in df.loc[sp, "source"] and "copymove" in df.loc[cm, "source"]


def test_casia1_layout(tmp_path):
    raw = tmp_path / "raw"
    _jpeg(raw / "CASIA 1.0 dataset" / "Au" / "Au_ani_0001.jpg")
    cm, sp = "Sp_S_CND_A_pla0016_pla0016_0196", "Sp_D_CND_A_pla0005_pla0023_0281"
    _jpeg(raw / "CASIA 1.0 dataset" / "Modified Tp" / "Tp" / "CM" / f"{cm}.jpg", seed=1)
    _jpeg(raw / "CASIA 1.0 dataset" / "Modified Tp" / "Tp" / "Sp" / f"{sp}.jpg", seed=2)
    _mask(raw / "groundtruth" / "CASIA 1.0 groundtruth" / "CM" / f"{cm}_gt.png")
    _mask(raw / "groundtruth" / "CASIA 1.0 groundtruth" / "Sp" / f"{sp}_gt.png")
    df = _prepare_public("casia1", raw, tmp_path)
    assert df["label"].to_dict() == {"Au_ani_0001": 0, cm: 1, sp: 1}
    assert all(read_mask(df.loc[i, "mask"]).sum() == 225 for i in (cm, sp))


def test_columbia_layout_binarises_colour_edge_masks(tmp_path):
    raw = tmp_path / "raw" / "columbia"
    _tif(raw / "4cam_auth" / "canong3_02_sub_01.tif")
    name = "canong3_canonxt_sub_01"
    _tif(raw / "4cam_splc" / f"{name}.tif", seed=1)
    edge = np.zeros((32, 40, 3), np.uint8)
    edge[..., 0] = 255  # red: the host camera's region
    edge[8:24, 10:30] = (0, 255, 0)  # green: the spliced region
    edge[8, 10:30] = (255, 255, 255)  # a white boundary line
    (raw / "4cam_splc" / "edgemask").mkdir(parents=True)
    Image.fromarray(edge).save(raw / "4cam_splc" / "edgemask" / f"{name}_edgemask.jpg", quality=95)
    df = _prepare_public("columbia", raw, tmp_path)
    assert df["label"].to_dict() == {"canong3_02_sub_01": 0, name: 1}
    got = read_mask(df.loc[name, "mask"])
    expected = np.zeros((32, 40), bool)
    expected[9:24, 10:30] = True
    assert (got != expected).mean() < 0.02
    assert df.loc[name, "image"].endswith(".png")  # TIFF converted losslessly
    assert (read_rgb(df.loc[name, "image"]) == read_rgb(raw / "4cam_splc" / f"{name}.tif")).all()


def test_columbia_mask_rule():
    arr = np.array([[[250, 10, 5], [5, 240, 10], [255, 255, 255], [0, 0, 0]]], np.uint8)
    assert columbia_mask(arr).tolist() == [[False, True, False, False]]


def test_coverage_layout(tmp_path):
    raw = tmp_path / "raw"
    for n in (1, 12):
        _tif(raw / "COVERAGE" / "image" / f"{n}.tif", seed=n)
        _tif(raw / "COVERAGE" / "image" / f"{n}t.tif", seed=n + 100)
        _mask(raw / "COVERAGE" / "mask" / f"{n}forged.tif", box=(0, 0, n, n))
        _mask(raw / "COVERAGE" / "mask" / f"{n}copy.tif", box=(20, 20, 30, 30))
        _mask(raw / "COVERAGE" / "mask" / f"{n}paste.tif", box=(0, 0, n, n))
    df = _prepare_public("coverage", raw, tmp_path)
    assert df["label"].to_dict() == {"1": 0, "1t": 1, "12": 0, "12t": 1}
    assert read_mask(df.loc["12t", "mask"]).sum() == 144 and read_mask(df.loc["1t", "mask"]).sum() == 1
    assert not read_mask(df.loc["12", "mask"]).any()


# ----------------------------------------------------------------------------- CLI


def test_cli_prepare_and_download_noop(tmp_path, capsys):
    out = tmp_path / "data" / "prepared" / "synthetic"
    cfg = '{"dataset": {"name": "synthetic", "synthetic": {"n_images": 6, "size": 64}}}'
    assert main(["data", "prepare", "--config-json", cfg, "--out", str(out)]) == 0
    assert len(read_manifest(out / "manifest.csv")) == 6
    assert main(["data", "download", "synthetic", "--out", str(tmp_path / "raw")]) == 0
    assert "nothing to download" in capsys.readouterr().err
    args = ["data", "prepare", "--config-json", '{"dataset": {"name": "folder"}}', "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "dataset.folder.path" in capsys.readouterr().err
