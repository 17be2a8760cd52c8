"""`weakloc localize` and the workflow commands cams / fuse / refine, end to end on tiny inputs."""

import csv
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from weakloc.cli import main
from weakloc.config import validate_config
from weakloc.io import read_prob
from weakloc.localize import overlay
from weakloc.wcbnet import build_wcbnet, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = validate_config({"model": {"widths": [4, 8, 8], "token_dim": 8}})
    path = tmp_path_factory.mktemp("ckpt") / "wcbnet.pt"
    save_checkpoint(path, build_wcbnet(cfg), cfg)
    return path


def photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Good files in every format the CLI must read, and two bad ones. Returns (folder, {stem: (h, w)})."""
    d = tmp_path_factory.mktemp("inputs")
    sizes = {}

    def save(name, img, **kw):
        img.save(d / name, **kw)
        sizes[name.rsplit(".", 1)[0]] = (img.height, img.width)

    save("good_png.png", Image.fromarray(photo(40, 56, 1)))
    save("good_jpeg.jpg", Image.fromarray(photo(45, 61, 2)), quality=85)
    save("tiff16.tif", Image.fromarray(photo(33, 47, 3)[..., 0].astype(np.uint16) * 257))
    save("rgba.png", Image.fromarray(np.dstack([photo(30, 30, 4), np.full((30, 30), 128, np.uint8)]), "RGBA"))
    save("palette.png", Image.fromarray(photo(36, 28, 5)).convert("P", palette=Image.Palette.ADAPTIVE))
    save("cmyk.jpg", Image.fromarray(photo(29, 35, 6)).convert("CMYK"), quality=90)
    save("web.webp", Image.fromarray(photo(31, 43, 7)), quality=80)
    save("gray.png", Image.fromarray(photo(25, 27, 8)[..., 1], mode="L"))
    (d / "notes.jpg").write_text("this is not an image\n")
    buf = io.BytesIO()
    Image.fromarray(photo(64, 64, 9)).save(buf, format="JPEG", quality=90)
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (d / "readme.txt").write_text("not picked up: folders contribute image suffixes only\n")
    return d, sizes


def test_localize_mixed_folder(mixed_folder, checkpoint, tmp_path, capsys):
    folder, sizes = mixed_folder
    out = tmp_path / "out"
    status = main(["localize", str(folder), "--checkpoint", str(checkpoint), "--out", str(out)])
    err = capsys.readouterr().err
    assert status != 0
    assert "notes.jpg" in err and "truncated.jpg" in err
    assert "readme.txt" not in err
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [r["id"] for r in rows] == sorted(sizes)
    assert list(rows[0]) == ["id", "score", "prob", "mask", "overlay"]
    for r in rows:
        h, w = sizes[r["id"]]
        assert 0.0 <= float(r["score"]) <= 1.0
        prob = Image.open(out / r["prob"])
        mask = Image.open(out / r["mask"])
        ov = Image.open(out / r["overlay"])
        assert prob.mode == "L" and prob.size == (w, h)
        assert mask.size == (w, h) and set(np.unique(np.asarray(mask))) <= {0, 255}
        assert ov.format == "JPEG" and ov.mode == "RGB" and ov.size == (w, h)
        # the mask is exactly prob > 0.5 of the written map
        np.testing.assert_array_equal(np.asarray(mask) == 255, read_prob(out / r["prob"]) > 0.5)
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind


def test_localize_named_files_several_segmenters_and_fusion(mixed_folder, checkpoint, tmp_path, capsys):
    folder, sizes = mixed_folder
    out = tmp_path / "out"
    status = main(["localize", str(folder / "good_png.png"), str(folder / "web.webp"), "--checkpoint",
                   str(checkpoint), "--out", str(out), "--segmenter", "slic", "felzenszwalb", "--fusion", "max"])
    assert status == 0
    df = pd.read_csv(out / "scores.csv")
    assert list(df["id"]) == ["good_png", "web"]


def test_localize_same_stem_gets_distinct_ids(checkpoint, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(photo(24, 24, 1)).save(d / "a.png")
    Image.fromarray(photo(24, 24, 2)).save(d / "a.jpg")
    assert main(["localize", str(d), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
                 "--no-refine"]) == 0
    assert sorted(pd.read_csv(tmp_path / "o" / "scores.csv")["id"]) == ["a", "a_png"]


def test_localize_missing_checkpoint_is_a_one_line_error(mixed_folder, tmp_path, capsys):
    folder, _ = mixed_folder
    assert main(["localize", str(folder), "--checkpoint", str(tmp_path / "no.pt"), "--out", str(tmp_path)]) == 2
    assert "no.pt" in capsys.readouterr().err


def test_overlay_tints_red():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    out = overlay(rgb, np.array([[0.0, 1.0], [0.5, 0.0]]))
    assert tuple(out[0, 0]) == (100, 100, 100)
    assert out[0, 1, 0] > 100 and out[0, 1, 1] < 100


def test_workflow_commands_cams_fuse_refine(checkpoint, tmp_path):
    from weakloc.manifest import write_manifest
    from weakloc.segmenters.partition import save_partition

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rows = []
    for i, (h, w) in enumerate([(40, 48), (33, 57), (64, 64)]):
        Image.fromarray(photo(h, w, i)).save(data / "images" / f"im{i}.png")
        rows.append({"id": f"im{i}", "split": "test", "label": i % 2, "image": f"images/im{i}.png", "mask": "",
                     "width": w, "height": h, "source": "test"})
    rows.append({"id": "tr", "split": "train", "label": 0, "image": "images/im0.png", "mask": "",
                 "width": 48, "height": 40, "source": "test"})
    write_manifest(pd.DataFrame(rows), data / "manifest.csv")
    cams = tmp_path / "cams"
    assert main(["cams", "--manifest", str(data / "manifest.csv"), "--split", "test", "--checkpoint",
                 str(checkpoint), "--out", str(cams)]) == 0
    blocks = pd.read_csv(cams / "blocks.csv", dtype={"id": str})
    assert list(blocks.columns) == ["id", "label", "score", "w1", "w2", "w3"]
    assert list(blocks["id"]) == ["im0", "im1", "im2"]
    np.testing.assert_allclose(blocks[["w1", "w2", "w3"]].sum(axis=1), 1.0, atol=1e-4)
    for b in (1, 2, 3):
        assert read_prob(cams / f"block{b}" / "im1.png").shape == (33, 57)

    for method in ("attention", "mean", "max", "wavelet"):
        assert main(["fuse", "--cams", str(cams), "--method", method, "--out", str(tmp_path / "fused" / method)]) == 0
    # mean fusion equals the mean of the stored block maps (up to 8-bit rounding)
    stored = np.stack([read_prob(cams / f"block{b}" / "im2.png") for b in (1, 2, 3)])
    np.testing.assert_allclose(read_prob(tmp_path / "fused" / "mean" / "im2.png"), stored.mean(0), atol=1 / 255 + 1e-6)

    segs = [tmp_path / "seg_a", tmp_path / "seg_b"]
    for i, (h, w) in enumerate([(40, 48), (33, 57), (64, 64)]):
        grid = (np.arange(h)[:, None] // 8) * (-(-w // 8)) + np.arange(w)[None, :] // 8
        save_partition(grid.astype(np.int32), segs[0] / f"im{i}.npz")
        save_partition((np.arange(h)[:, None] // 5 + 0 * np.arange(w)[None, :]).astype(np.int32), segs[1] / f"im{i}.npz")
    out = tmp_path / "refined"
    cfg = '{"refine": {"evidence": "map", "evidence_blocks": [2, 3], "gate": true}}'
    assert main(["refine", "--fused", str(tmp_path / "fused" / "attention"), "--segments", *map(str, segs),
                 "--cams", str(cams), "--out", str(out), "--config-json", cfg]) == 0
    for i, (h, w) in enumerate([(40, 48), (33, 57), (64, 64)]):
        r = read_prob(out / f"im{i}.png")
        assert r.shape == (h, w)
        # gated: never above the image probability
        assert r.max() <= blocks["score"][i] + 1 / 255 + 1e-6


def test_fuse_without_cams_names_the_file(tmp_path, capsys):
    assert main(["fuse", "--cams", str(tmp_path / "none"), "--method", "mean", "--out", str(tmp_path / "o")]) == 2
    assert "blocks.csv" in capsys.readouterr().err
