"""The per-image steps as library calls: a cams folder (``blocks.csv`` + block maps) in, map folders out.

Each step's folder must hold exactly what the step's per-image function gives for each image
(byte for byte after the 8-bit PNG), and a shard must write its own images only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from factories import random_checkpoint, tiny_model_config
from weakloc.blockmaps import BLOCKS_CSV, read_block_maps, read_blocks_csv, weight_columns
from weakloc.cams import block_maps, write_block_maps
from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.fusion import fuse, fuse_folder
from weakloc.io import read_prob, write_prob
from weakloc.manifest import write_manifest
from weakloc.peer_rules import apply_peer_rule, peer_refine_folder
from weakloc.refinement import refine_folder, refine_with_config
from weakloc.segmenters.partition import save_partition
from weakloc.shards import Shard
from weakloc.wcbnet import load_checkpoint

SIZES = [(20, 24), (17, 31), (24, 24), (9, 13), (16, 12)]
IDS = [f"im{i}" for i in range(len(SIZES))]


def _png_bytes(prob: np.ndarray, path) -> bytes:
    write_prob(prob, path)
    return path.read_bytes()


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def cams_dir(tmp_path):
    """A hand-made cams folder: 3 blocks, random maps and weights, ids in a non-sorted order."""
    rng = np.random.default_rng(0)
    cams = tmp_path / "cams"
    rows = []
    for image_id, (h, w) in zip(IDS[::-1], SIZES[::-1], strict=True):
        for b in (1, 2, 3):
            write_prob(rng.random((h, w)), cams / f"block{b}" / f"{image_id}.png")
        weights = rng.random(3) + 0.1
        rows.append({"id": image_id, "label": 1, "score": round(float(rng.random()), 6),
                     **{f"w{b}": round(float(x), 6) for b, x in zip((1, 2, 3), weights / weights.sum(), strict=True)}})
    pd.DataFrame(rows).to_csv(cams / BLOCKS_CSV, index=False)
    return cams


@pytest.fixture
def fused_and_segments(tmp_path):
    """A fused map and a partition into 4 x 4 squares per image."""
    rng = np.random.default_rng(1)
    fused, seg = tmp_path / "fused", tmp_path / "seg"
    for image_id, (h, w) in zip(IDS, SIZES, strict=True):
        write_prob(rng.random((h, w)), fused / f"{image_id}.png")
        grid = (np.arange(h)[:, None] // 4) * (-(-w // 4)) + np.arange(w)[None, :] // 4
        save_partition(grid.astype(np.int32), seg / f"{image_id}.npz")
    return fused, seg


# ------------------------------------------------------------------------------ blocks.csv

def test_weight_columns_are_in_block_order_not_text_order():
    df = pd.DataFrame(columns=["id", "score", "w10", "w2", "w1", "wx", "label"])
    assert weight_columns(df) == ["w1", "w2", "w10"]


def test_blocks_csv_keeps_ids_as_text(tmp_path):
    pd.DataFrame({"id": ["007", "NA"], "label": [0, 1], "score": [0.1, 0.2], "w1": [1.0, 1.0]}).to_csv(
        tmp_path / BLOCKS_CSV, index=False)
    assert list(read_blocks_csv(tmp_path)["id"]) == ["007", "NA"]


@pytest.mark.parametrize("columns", [["id", "label", "score"], ["label", "score", "w1"], ["id", "w1"]])
def test_blocks_csv_without_its_columns_is_an_error(tmp_path, columns):
    pd.DataFrame([[1] * len(columns)], columns=columns).to_csv(tmp_path / BLOCKS_CSV, index=False)
    with pytest.raises(WeaklocError, match=r"blocks.csv: needs columns id, score and w1..wB"):
        read_blocks_csv(tmp_path)


def test_missing_blocks_csv_says_to_run_cams(tmp_path):
    with pytest.raises(WeaklocError, match=r"blocks.csv: not found \(run `weakloc cams` first\)"):
        read_blocks_csv(tmp_path)


def test_read_block_maps_stacks_the_blocks_in_order(cams_dir):
    maps = read_block_maps(cams_dir, "im1", 3)
    assert maps.shape == (3, 17, 31) and maps.dtype == np.float32
    for b in (1, 2, 3):
        np.testing.assert_array_equal(maps[b - 1], read_prob(cams_dir / f"block{b}" / "im1.png"))


# ------------------------------------------------------------------------------ cams

@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A manifest (4 test images, 1 train image) and a randomly initialised 3-block checkpoint."""
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(2)
    (root / "images").mkdir()
    rows = []
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        rows.append({"id": f"im{i}", "split": "train" if i == 2 else "test", "label": i % 2,
                     "image": f"images/im{i}.png", "mask": "", "width": w, "height": h, "source": "t"})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    return root / "manifest.csv", random_checkpoint(root / "w.pt"), tiny_model_config()


def test_write_block_maps_holds_each_images_block_maps_and_blocks_csv_row(tiny_study, tmp_path):
    manifest, ckpt, cfg = tiny_study
    out = tmp_path / "cams"
    assert write_block_maps(manifest, "test", ckpt, out, cfg) == 4
    df = read_blocks_csv(out)
    assert list(df.columns) == ["id", "label", "score", "threshold", "w1", "w2", "w3"]
    assert set(df["threshold"]) == {0.5}  # a checkpoint without an operating point: the default verdict
    assert list(df["id"]) == ["im0", "im1", "im3", "im4"] and list(df["label"]) == [0, 1, 1, 0]
    model, meta = load_checkpoint(ckpt)
    for row in df.itertuples(index=False):
        rgb = np.asarray(Image.open(manifest.parent / "images" / f"{row.id}.png").convert("RGB"))
        bm = block_maps(model, meta, rgb, cfg["cams"]["method"], cfg["cams"]["max_side"])
        assert row.score == round(bm.prob, 6)
        assert [row.w1, row.w2, row.w3] == [round(float(x), 6) for x in bm.weights]
        for b in range(3):
            assert (out / f"block{b + 1}" / f"{row.id}.png").read_bytes() == _png_bytes(bm.maps[b], tmp_path / "x.png")
    assert sorted(p.name for p in out.iterdir()) == ["block1", "block2", "block3", BLOCKS_CSV]


def test_write_block_maps_of_a_shard_writes_only_its_images(tiny_study, tmp_path):
    manifest, ckpt, cfg = tiny_study
    write_block_maps(manifest, "test", ckpt, tmp_path / "all", cfg)
    assert write_block_maps(manifest, "test", ckpt, tmp_path / "s2", cfg, shard=Shard(2, 3)) == 1
    whole, part = _files(tmp_path / "all"), _files(tmp_path / "s2")
    assert sorted(part) == ["block1/im1.png", "block2/im1.png", "block3/im1.png", BLOCKS_CSV]
    assert all(part[k] == whole[k] for k in part if k != BLOCKS_CSV)
    assert list(read_blocks_csv(tmp_path / "s2")["id"]) == ["im1"]


def test_write_block_maps_of_an_empty_split_is_an_error(tiny_study, tmp_path):
    manifest, ckpt, cfg = tiny_study
    with pytest.raises(WeaklocError, match=r"no images in split 'val'"):
        write_block_maps(manifest, "val", ckpt, tmp_path / "cams", cfg)


# ------------------------------------------------------------------------------ fuse

@pytest.mark.parametrize("method", ["attention", "wavelet"])
def test_fuse_folder_writes_the_fusion_of_each_images_stored_maps(cams_dir, tmp_path, method):
    cfg = validate_config({})
    assert fuse_folder(cams_dir, method, tmp_path / "out", cfg) == len(IDS)
    df = read_blocks_csv(cams_dir)
    for row in df.to_dict("records"):
        maps = read_block_maps(cams_dir, row["id"], 3)
        want = fuse(maps, method, weights=[row["w1"], row["w2"], row["w3"]],
                    wavelet=cfg["fusion"]["wavelet"]["name"], level=cfg["fusion"]["wavelet"]["level"])
        assert (tmp_path / "out" / f"{row['id']}.png").read_bytes() == _png_bytes(want, tmp_path / "x.png")
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == sorted(IDS)


def test_fuse_folder_of_a_shard_writes_only_its_images(cams_dir, tmp_path):
    cfg = validate_config({})
    fuse_folder(cams_dir, "mean", tmp_path / "all", cfg)
    assert fuse_folder(cams_dir, "mean", tmp_path / "s", cfg, shard=Shard(2, 3)) == 2
    rows = list(read_blocks_csv(cams_dir)["id"])
    part = _files(tmp_path / "s")
    assert sorted(part) == sorted(f"{i}.png" for i in rows[1::3])
    assert all(part[k] == (tmp_path / "all" / k).read_bytes() for k in part)


def test_fuse_folder_checks_the_method_before_reading(tmp_path):
    with pytest.raises(WeaklocError, match=r"unknown fusion method 'median'"):
        fuse_folder(tmp_path / "no_cams", "median", tmp_path / "out", validate_config({}))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ refine, peer-refine

def test_refine_folder_refines_each_image_with_its_score_and_block_maps(cams_dir, fused_and_segments, tmp_path):
    fused, seg = fused_and_segments
    cfg = validate_config({"refine": {"evidence": "map", "evidence_blocks": [2, 3], "scale_by_score": True}})
    assert refine_folder(fused, [seg, seg], cams_dir, tmp_path / "out", cfg) == len(IDS)
    for row in read_blocks_csv(cams_dir).to_dict("records"):
        image_id = row["id"]
        part = np.load(seg / f"{image_id}.npz")["labels"]
        want = refine_with_config(read_prob(fused / f"{image_id}.png"), [part, part], cfg["refine"],
                                  image_prob=float(row["score"]), block_maps=read_block_maps(cams_dir, image_id, 3))
        assert (tmp_path / "out" / f"{image_id}.png").read_bytes() == _png_bytes(want, tmp_path / "x.png")


def test_refine_folder_of_a_shard_writes_only_its_images(cams_dir, fused_and_segments, tmp_path):
    fused, seg = fused_and_segments
    cfg = validate_config({})
    refine_folder(fused, [seg], cams_dir, tmp_path / "all", cfg)
    assert refine_folder(fused, [seg], cams_dir, tmp_path / "s", cfg, shard=Shard(3, 3)) == 1
    part = _files(tmp_path / "s")
    assert sorted(part) == [f"{read_blocks_csv(cams_dir)['id'][2]}.png"]
    assert all(part[k] == (tmp_path / "all" / k).read_bytes() for k in part)


def test_a_partition_of_another_size_names_its_file(cams_dir, fused_and_segments, tmp_path):
    fused, seg = fused_and_segments
    save_partition(np.zeros((5, 5), np.int32), seg / "im3.npz")
    with pytest.raises(WeaklocError, match=r"seg/im3.npz: partition \(5, 5\) does not match the fused map \(9, 13\)"):
        refine_folder(fused, [seg], cams_dir, tmp_path / "out", validate_config({}))
    with pytest.raises(WeaklocError, match=r"seg/im3.npz: partition \(5, 5\) does not match"):
        peer_refine_folder("sepl", fused, seg, cams_dir, tmp_path / "peer", validate_config({}))


@pytest.mark.parametrize("rule", ["edgecam", "sepl"])
def test_peer_refine_folder_applies_the_rule_to_each_image(cams_dir, fused_and_segments, tmp_path, rule):
    fused, seg = fused_and_segments
    cfg = validate_config({})
    assert peer_refine_folder(rule, fused, seg, cams_dir, tmp_path / "out", cfg) == len(IDS)
    for image_id in IDS:
        part = np.load(seg / f"{image_id}.npz")["labels"]
        want = apply_peer_rule(rule, read_prob(fused / f"{image_id}.png"), part, cfg["peer_rules"][rule])
        assert (tmp_path / "out" / f"{image_id}.png").read_bytes() == _png_bytes(want, tmp_path / "x.png")
