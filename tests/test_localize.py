"""`weakloc localize` and the workflow commands cams / fuse / refine, end to end on tiny inputs."""

import csv
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from factories import photo, random_checkpoint
from weakloc.cli import main
from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.io import read_prob
from weakloc.localize import overlay
from weakloc.wcbnet import build_wcbnet, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "wcbnet.pt")


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
    assert list(rows[0]) == ["id", "score", "verdict", "threshold", "threshold_source", "prob", "mask", "overlay",
                             "photo", "input"]
    # an old checkpoint without an operating point: verdict at the 0.5 fallback, and the CSV says so
    assert {r["threshold_source"] for r in rows} == {"default"} and {r["threshold"] for r in rows} == {"0.500000"}
    assert all(r["verdict"] == ("manipulated" if float(r["score"]) > 0.5 else "authentic") for r in rows)
    assert (out / "index.html").is_file() and (out / "run.json").is_file()
    for r in rows:
        h, w = sizes[r["id"]]
        assert 0.0 <= float(r["score"]) <= 1.0
        prob = Image.open(out / r["prob"])
        mask = Image.open(out / r["mask"])
        ov = Image.open(out / r["overlay"])
        assert prob.mode == "L" and prob.size == (w, h)
        assert mask.size == (w, h) and set(np.unique(np.asarray(mask))) <= {0, 255}
        assert ov.format == "JPEG" and ov.mode == "RGB" and ov.size == (w, h)
        assert Image.open(out / r["photo"]).size == (w, h)
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
    assert list(blocks.columns) == ["id", "label", "score", "threshold", "w1", "w2", "w3"]
    assert list(blocks["id"]) == ["im0", "im1", "im2"]
    # the checkpoint's operating point, the same on every row, for refine's mask_min_score = verdict
    assert blocks["threshold"].nunique() == 1 and 0.0 < blocks["threshold"][0] < 1.0
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
        save_partition((np.arange(h)[:, None] // 5 + 0 * np.arange(w)[None, :]).astype(np.int32),
                       segs[1] / f"im{i}.npz")
    out = tmp_path / "refined"
    cfg = '{"refine": {"evidence": "map", "evidence_blocks": [2, 3], "scale_by_score": true}}'
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


# --------------------------------------------------------------------------- Python API

def test_localizer_api_matches_the_cli_files(mixed_folder, checkpoint, tmp_path):
    from weakloc import Localization, Localizer

    folder, sizes = mixed_folder
    out = tmp_path / "out"
    main(["localize", str(folder / "good_jpeg.jpg"), str(folder / "tiff16.tif"), "--checkpoint", str(checkpoint),
          "--out", str(out)])
    rows = {r["id"]: r for r in csv.DictReader(open(out / "scores.csv"))}
    loc = Localizer(checkpoint)  # loads once; called on paths, arrays and Pillow images below
    for stem, name in (("good_jpeg", "good_jpeg.jpg"), ("tiff16", "tiff16.tif")):
        res = loc(folder / name)
        assert isinstance(res, Localization)
        assert res.prob.shape == sizes[stem] and res.prob.dtype == np.float32 and res.mask.dtype == bool
        # the same numbers as the files the CLI wrote: map, mask (exactly prob > 0.5), score, verdict
        np.testing.assert_array_equal(res.prob, read_prob(out / rows[stem]["prob"]))
        np.testing.assert_array_equal(res.mask, res.prob > 0.5)
        np.testing.assert_array_equal(res.mask, np.asarray(Image.open(out / rows[stem]["mask"])) == 255)
        assert f"{res.score:.6f}" == rows[stem]["score"] and res.verdict == rows[stem]["verdict"]
        assert (res.threshold, res.threshold_source) == (0.5, "default")
    rgb = np.asarray(Image.open(folder / "good_png.png").convert("RGB"))
    by_array, by_path = loc(rgb), loc(str(folder / "good_png.png"))
    np.testing.assert_array_equal(by_array.prob, by_path.prob)
    assert by_array.score == by_path.score
    assert loc(Image.fromarray(rgb)).score == by_path.score
    with pytest.raises(WeaklocError, match=r"\(H, W, 3\) uint8"):
        loc(rgb.astype(np.float32))
    with pytest.raises(WeaklocError, match="missing.png"):
        loc(tmp_path / "missing.png")


def test_verdict_uses_the_operating_point_stored_in_the_checkpoint(tmp_path):
    from weakloc import Localizer

    torch.manual_seed(0)
    cfg = validate_config({"model": {"widths": [4, 8, 8], "token_dim": 8}})
    model = build_wcbnet(cfg)
    img = tmp_path / "a.png"
    Image.fromarray(photo(40, 40, 3)).save(img)
    score = Localizer(_save(tmp_path / "plain.pt", model, cfg), segmenters=[])(img).score
    for offset, verdict in ((-1e-3, "manipulated"), (1e-3, "authentic")):
        ckpt = _save(tmp_path / f"op{offset}.pt", model, cfg,
                     {"image_threshold": {"value": score + offset, "criterion": "youden_j"}})
        res = Localizer(ckpt, segmenters=[])(img)
        assert (res.threshold, res.threshold_source, res.verdict) == (score + offset, "validation", verdict)
        out = tmp_path / f"out{offset}"
        assert main(["localize", str(img), "--checkpoint", str(ckpt), "--out", str(out), "--no-refine"]) == 0
        row = next(csv.DictReader(open(out / "scores.csv")))
        assert (row["verdict"], row["threshold_source"]) == (verdict, "validation")
        assert "chosen on the validation split" in (out / "index.html").read_text()


def _save(path, model, cfg, extra=None):
    save_checkpoint(path, model, cfg, extra)
    return path


def test_choose_threshold_maximises_youden_j_like_sklearn():
    from sklearn.metrics import f1_score, roc_curve

    from weakloc.operating_point import choose_threshold

    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
        if trial % 3 == 0:
            s = np.round(s, 1)  # many ties
        point = choose_threshold(y, s)
        fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
        j = tpr - fpr
        assert point["j"] == pytest.approx(j.max(), abs=1e-12)
        best = np.flatnonzero(np.isclose(j, j.max(), rtol=0, atol=1e-12))
        # ties go to the highest cut: sklearn's thresholds are decreasing, so the first maximum
        cut = thr[best[0]]
        pred = s > point["value"]
        if np.isfinite(cut):
            np.testing.assert_array_equal(pred, s >= cut)
        else:
            assert not pred.any()
        assert point["value"] not in set(s.tolist()) and 0 <= point["value"] <= 1
        assert point["tpr"] == pytest.approx(pred[y == 1].mean()) and point["fpr"] == pytest.approx(pred[y == 0].mean())
        assert point["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
    assert choose_threshold([1, 1], [0.2, 0.9]) is None
    # a perfect separation: the cut lies halfway between the classes
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9])["value"] == pytest.approx(0.5)


def test_training_stores_the_validation_operating_point(tmp_path):
    from test_training import make_toy_dataset, tiny_config
    from weakloc.detection import score_images
    from weakloc.manifest import read_manifest
    from weakloc.operating_point import choose_threshold
    from weakloc.training import train_wcbnet
    from weakloc.wcbnet import load_checkpoint

    manifest = make_toy_dataset(tmp_path / "toy", n_per_class=8)
    train_wcbnet(manifest, tiny_config(epochs=2), 0, tmp_path / "w.pt", tmp_path / "log.csv")
    model, meta = load_checkpoint(tmp_path / "w.pt")
    point = meta["image_threshold"]
    assert point["criterion"] == "youden_j" and point["split"] == "val" and point["epoch"] == meta["epoch"]
    # it is the threshold of the saved (best-epoch) model's own validation probabilities
    val = read_manifest(manifest, split="val")
    probs = score_images(model, meta, val["image"].tolist(), device="cpu", progress=False)
    again = choose_threshold(val["label"].to_numpy(), probs)
    assert point["value"] == pytest.approx(again["value"], abs=1e-6) and point["j"] == pytest.approx(again["j"])


# --------------------------------------------------------------------------- EXIF orientation

def test_orient_array_is_pillows_exif_transpose():
    from PIL import ImageOps

    from weakloc.io import orient_array

    a = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for o in range(1, 9):
        buf = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = o
        Image.fromarray(a).save(buf, format="JPEG", exif=exif, quality=100)
        shown = ImageOps.exif_transpose(Image.open(buf))
        stored = np.asarray(Image.open(buf).convert("RGB"))
        np.testing.assert_array_equal(orient_array(stored, o), np.asarray(shown.convert("RGB")))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_rotated_jpeg_maps_line_up_with_a_mask_drawn_on_the_displayed_image(checkpoint, tmp_path, orientation):
    """A flat grey square (zero SEL: constant detector output) in a noisy photo, as a viewer shows it;
    the file stores the pixels turned and says so in its EXIF orientation tag."""
    from weakloc import Localizer
    from weakloc.io import orient_array

    H, W = 256, 384  # displayed; multiples of 16 keep the flat square on whole JPEG blocks either way
    shown = np.random.default_rng(1).integers(0, 256, (H, W, 3)).astype(np.uint8)
    gt = np.zeros((H, W), bool)
    gt[32:224, 32:224] = True
    shown[gt] = 128
    inverse = {3: 3, 6: 8, 8: 6}[orientation]
    stored = orient_array(shown, inverse)
    assert np.array_equal(orient_array(stored, orientation), shown)
    exif = Image.Exif()
    exif[0x0112] = orientation
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(stored).save(d / "turned.jpg", quality=95, exif=exif)
    (tmp_path / "gt").mkdir()
    Image.fromarray(gt.astype(np.uint8) * 255).save(tmp_path / "gt" / "turned.png")  # drawn on the displayed image

    out = tmp_path / "out"
    assert main(["localize", str(d), "--checkpoint", str(checkpoint), "--out", str(out), "--no-refine"]) == 0
    prob = read_prob(out / "turned_prob.png")
    assert prob.shape == (H, W)
    inner = prob[96:160, 96:160]   # inside the square, beyond the detector's reach of its edges
    mirror = prob[96:160, W - 160:W - 96]  # where the square would be if the map were not turned
    assert np.ptp(inner) == 0.0 and np.ptp(mirror) > 0
    assert np.abs(np.asarray(Image.open(out / "turned_photo.jpg").convert("L"), float)[gt][:100] - 128).max() < 4
    # `weakloc score OUT GT`: the map and the mask drawn on the displayed image have the same size
    assert main(["score", str(out), str(tmp_path / "gt"), "--quiet"]) == 0
    # the API reads the file the same way
    np.testing.assert_array_equal(Localizer(checkpoint, segmenters=[])(d / "turned.jpg").prob, prob)


# --------------------------------------------------------------------------- commands that chain

def test_score_reads_the_localize_folder_without_flags(mixed_folder, checkpoint, tmp_path, capsys):
    import json

    from weakloc.scoring import detect_suffix

    folder, sizes = mixed_folder
    out, gt = tmp_path / "out", tmp_path / "gt"
    gt.mkdir()
    for stem in ("good_png", "web"):
        h, w = sizes[stem]
        m = np.zeros((h, w), np.uint8)
        m[: h // 2, : w // 3] = 255
        Image.fromarray(m).save(gt / f"{stem}.png")
    assert main(["localize", str(folder / "good_png.png"), str(folder / "web.webp"), "--checkpoint",
                 str(checkpoint), "--out", str(out)]) == 0
    assert detect_suffix(out) == "_prob.png" and detect_suffix(gt) == ".png"
    capsys.readouterr()
    assert main(["score", str(out), str(gt), "--quiet", "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["suffix"] == "_prob.png" and summary["n_missing"] == 0 and summary["n_images"] == 2
    # without scores.csv the file names alone identify the folder
    (out / "scores.csv").unlink()
    assert detect_suffix(out) == "_prob.png"


# --------------------------------------------------------------------------- speed levers change nothing else

def test_pipelined_cli_equals_the_step_by_step_reference(mixed_folder, checkpoint, tmp_path):
    """The CLI reads ahead, detects, and segments the previous image in worker threads: same bytes
    as one thread doing each stage in turn (Localizer.localize)."""
    from weakloc.pipeline import Localizer

    folder, _ = mixed_folder
    out = tmp_path / "out"
    assert main(["localize", str(folder), "--checkpoint", str(checkpoint), "--out", str(out), "--segmenter", "slic",
                 "felzenszwalb"]) == 1  # the two bad files
    reference = Localizer(checkpoint, segmenters=["slic", "felzenszwalb"])
    for r in csv.DictReader(open(out / "scores.csv")):
        res, _ = reference.localize(r["input"])
        np.testing.assert_array_equal(read_prob(out / r["prob"]), res.prob)
        assert r["score"] == f"{res.score:.6f}"


def test_segment_max_side_sets_every_downscaling_segmenter(checkpoint, tmp_path):
    """--segment-max-side N is segmenters.<name>.max_side = N for every segmenter but sam_prompt
    (the partition itself: tests/test_segmenters.py), and a bound the schema refuses is a one-line error."""
    from weakloc.segmenters import DOWNSCALED_SEGMENTERS

    assert DOWNSCALED_SEGMENTERS == ("slic", "felzenszwalb", "sam", "deeplab", "pspnet")
    rgb = photo(150, 230, 4)
    out = tmp_path / "o"
    assert main(["localize", str(_png(tmp_path, rgb)), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--segmenter", "slic", "--segment-max-side", "100", "--regions", "all"]) == 0
    assert read_prob(out / "p_prob.png").shape == (150, 230)
    assert json_load(out / "run.json")["settings"]["segmenter_settings"]["slic"]["max_side"] == 100
    assert main(["localize", str(tmp_path / "p.png"), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--segment-max-side", "8"]) == 2


def _png(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "p.png")
    return tmp_path / "p.png"


def json_load(path):
    import json

    return json.loads(path.read_text())


def test_localize_keeps_the_scores_of_images_done_before_a_failure(checkpoint, tmp_path, monkeypatch):
    """`scores.csv` is written as the run goes: a failure (a full disk, say) after N images keeps their rows."""
    import weakloc.localize as lz

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(photo(48, 64, seed=i)).save(folder / f"p{i}.png")
    real = lz.write_image_outputs

    def disk_full_on_the_fourth(out, image_id, *args):
        if image_id == "p3":
            raise OSError(28, "No space left on device", str(out / f"{image_id}_prob.png"))
        return real(out, image_id, *args)

    monkeypatch.setattr(lz, "write_image_outputs", disk_full_on_the_fourth)
    out = tmp_path / "out"
    assert main(["localize", str(folder), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    rows = pd.read_csv(out / "scores.csv")
    assert {"p0", "p1", "p2"} <= set(rows["id"]) and "p3" not in set(rows["id"])  # p4 may have been done too
    assert all((out / f"{i}_prob.png").is_file() for i in rows["id"])


# --------------------------------------------------------------------------- the study's settings by default

def test_training_stores_the_study_pipeline_and_localize_uses_it_without_a_config(tmp_path):
    """`weakloc train` records the study's localization sections in the checkpoint; `Localizer(ckpt)`
    and `weakloc localize` without --config run them; --config and --decision win; run.json and the
    gallery say where the settings came from; a checkpoint without them gets the schema's defaults."""
    import json

    from test_training import make_toy_dataset, tiny_config
    from weakloc import Localizer
    from weakloc.training import train_wcbnet
    from weakloc.wcbnet import load_checkpoint

    manifest = make_toy_dataset(tmp_path / "toy", n_per_class=6)
    study = tiny_config(epochs=1)
    study["segmenters"]["use"] = ["felzenszwalb"]
    study["refine"]["decision"]["rule"] = "calibrated"
    study["fusion"]["methods"] = ["max", "mean"]
    ckpt = tmp_path / "w.pt"
    train_wcbnet(manifest, study, 0, ckpt, tmp_path / "log.csv")
    stored = load_checkpoint(ckpt)[1]["pipeline"]
    assert stored["segmenters"]["use"] == ["felzenszwalb"] and stored["refine"]["decision"]["rule"] == "calibrated"
    assert set(stored) == {"cams", "fusion", "segmenters", "refine", "localize"}

    loc = Localizer(ckpt)
    assert (loc.settings_source, loc.segmenter_names, loc.fusion) == ("checkpoint", ["felzenszwalb"], "max")
    assert loc.config["refine"]["decision"]["rule"] == "calibrated"
    given = Localizer(ckpt, validate_config({}))
    assert given.settings_source == "config" and given.segmenter_names == validate_config({})["segmenters"]["use"]
    paper = Localizer(ckpt, overrides={"refine.decision.rule": "threshold"})
    assert paper.config["refine"]["decision"]["rule"] == "threshold" and paper.segmenter_names == ["felzenszwalb"]

    img = tmp_path / "a.png"
    Image.fromarray(photo(40, 40, 3)).save(img)
    for extra, source, rule in (([], "checkpoint", "calibrated"), (["--decision", "threshold"], "checkpoint",
                                                                    "threshold")):
        out = tmp_path / f"out{len(extra)}"
        assert main(["localize", str(img), "--checkpoint", str(ckpt), "--out", str(out), *extra]) == 0
        run = json.loads((out / "run.json").read_text())
        assert run["settings"]["source"] == source and run["settings"]["segmenters"] == ["felzenszwalb"]
        assert run["settings"]["refine"]["decision"]["rule"] == rule
        assert "the study that trained the checkpoint" in (out / "index.html").read_text()
        np.testing.assert_array_equal(read_prob(out / "a_prob.png"),
                                      (loc if rule == "calibrated" else paper)(img).prob)

    model = load_checkpoint(ckpt)[0]
    plain = _save(tmp_path / "plain.pt", model, study)  # saved without the training's meta
    defaults = Localizer(plain)
    assert defaults.settings_source == "defaults" and defaults.config["refine"] == validate_config({})["refine"]
