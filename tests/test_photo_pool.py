"""The photo pool: Qt resource bundles, Debian packages read without dpkg, the pinned list of photos,
the built pool folder, and the generator's use of it (split by photo, training size, post-processing).

Every package and bundle here is built by the test; nothing is fetched.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from weakloc.config import validate_config
from weakloc.datasets import prepare_dataset
from weakloc.datasets.debian import DebPackage, data_tar, fetch_deb, read_member
from weakloc.datasets.photo_pool import (
    POOL_CSV,
    PoolPackage,
    Selection,
    build_pool,
    parse_gcompris_readme,
    pool_rows,
    survey,
)
from weakloc.datasets.qt_resources import read_bundle, write_bundle
from weakloc.datasets.synthetic import SOURCE_PHOTOS, SyntheticSettings, generate_sample, photo_set
from weakloc.errors import WeaklocError
from weakloc.io import read_rgb
from weakloc.manifest import read_manifest

# ----------------------------------------------------------------------------- helpers


def _photo(seed: int, w: int = 180, h: int = 140) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(110 + 10 * seed, 20, size=(h, w, 3)).clip(0, 255).astype(np.uint8)
    img[: h // 3, : w // 4] = rng.integers(0, 255, size=3)
    return img


def _encode(arr: np.ndarray, fmt: str, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if orientation is None:
        img.save(buf, format=fmt)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, format=fmt, exif=exif)
    return buf.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    """A .deb (ar archive) whose data.tar.xz holds ``files`` (paths like ./usr/share/...)."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = {"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": tar_buf.getvalue()}
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- Qt resource bundles


def test_bundle_round_trip_with_folders_and_compression():
    files = {"a/resource/README": b"Copyright: x\nLicense: CC0-1.0\nFiles: p.webp\n",
             "a/resource/p.webp": bytes(range(256)) * 3, "a/resource/sub/q.png": b"\x89PNG" + b"\x00" * 50,
             "top.txt": b""}
    data = write_bundle(files, compress=("a/resource/README",))
    assert data[:4] == b"qres"
    assert read_bundle(data) == files
    # the compressed entry is stored compressed (flag 1), the photos raw
    assert b"Copyright" not in data and bytes(range(256)) in data


def test_bundle_errors_name_the_bundle():
    with pytest.raises(WeaklocError, match="x.rcc: not a Qt resource bundle"):
        read_bundle(b"PK\x03\x04" + b"\x00" * 40, "x.rcc")
    data = bytearray(write_bundle({"p.webp": b"abc" * 100}))
    struct.pack_into(">I", data, 4, 9)  # an unknown format version
    with pytest.raises(WeaklocError, match="y.rcc: Qt resource format version 9"):
        read_bundle(bytes(data), "y.rcc")
    with pytest.raises(WeaklocError, match="z.rcc: truncated"):
        read_bundle(write_bundle({"p.webp": b"abc" * 100})[:-250], "z.rcc")


# ----------------------------------------------------------------------------- Debian packages


def test_deb_is_read_without_dpkg(tmp_path):
    path = tmp_path / "demo_1.0_all.deb"
    path.write_bytes(_deb({"./usr/share/demo/a.jpg": b"JPEGDATA", "./usr/share/demo/b.txt": b"hi"}))
    tar = data_tar(path)
    assert read_member(tar, "./usr/share/demo/a.jpg", str(path)) == b"JPEGDATA"
    with pytest.raises(WeaklocError, match="no file ./usr/share/demo/c.jpg"):
        read_member(tar, "./usr/share/demo/c.jpg", str(path))
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an archive")
    with pytest.raises(WeaklocError, match="bad.deb: not a Debian package"):
        data_tar(bad)


def test_fetch_from_a_folder_checks_the_sha256_and_caches(tmp_path):
    data = _deb({"./usr/share/demo/a.jpg": b"JPEGDATA"})
    pkg = DebPackage("demo", "1:1.0-1", _sha(data))
    assert pkg.filename == "demo_1.0-1_all.deb"
    folder = tmp_path / "debs"
    folder.mkdir()
    (folder / "demo_1%3a1.0-1_all.deb").write_bytes(b"!<arch>\nsomething else")  # same name, other bytes
    with pytest.raises(WeaklocError, match="no demo_\\*.deb with the pinned sha256"):
        fetch_deb(pkg, tmp_path / "cache", folder)
    (folder / "demo_1%3a1.0-1_all.deb").write_bytes(data)  # apt's spelling of the epoch
    got = fetch_deb(pkg, tmp_path / "cache", folder)
    assert got == tmp_path / "cache" / pkg.filename and got.read_bytes() == data
    (folder / "demo_1%3a1.0-1_all.deb").unlink()
    assert fetch_deb(pkg, tmp_path / "cache", folder) == got  # the checked copy in the cache is used


def test_fetch_through_apt_get(tmp_path, monkeypatch):
    """apt-get is called as `apt-get download NAME=VERSION` in a scratch folder; a wrong file is refused."""
    data = _deb({"./usr/share/demo/a.jpg": b"JPEGDATA"})
    pkg = DebPackage("demo", "2.0", _sha(data))
    source = tmp_path / "mirror.deb"
    source.write_bytes(data)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncp {source} ./demo_2.0_all.deb\n")
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    got = fetch_deb(pkg, tmp_path / "cache")
    assert got.read_bytes() == data
    assert (tmp_path / "args").read_text().split() == ["download", "-q", "demo=2.0"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [pkg.filename]  # no scratch left behind
    source.write_bytes(data + b"tampered")
    with pytest.raises(WeaklocError, match="demo=3.0: the downloaded demo_2.0_all.deb does not have the pinned"):
        fetch_deb(DebPackage("demo", "3.0", _sha(data)), tmp_path / "cache2")
    apt.write_text("#!/bin/sh\necho 'E: Unable to locate package demo' >&2\nexit 100\n")
    with pytest.raises(WeaklocError, match="apt-get download failed \\(E: Unable to locate package demo\\)"):
        fetch_deb(DebPackage("demo", "4.0", _sha(data)), tmp_path / "cache3")


# ----------------------------------------------------------------------------- licence records


def test_readme_stanzas_with_and_without_a_files_line():
    text = ("Copyright: A\nLicense: CC-BY-SA-4.0\nSource: https://example.org/a\nFiles: a.webp\n\n"
            "Copyright: B\nLicense: Public Domain\nFiles:\nwonders/b.webp\nwonders/c.webp\n\n"
            "Copyright: C\nLicense: CC-BY 4.0\nd_0.webp\nd_background.webp\nComment: based on a photo by D\n\n"
            "Copyright: E\nLicense: CC0-1.0\nFiles: screDriver.webp\n")
    records = parse_gcompris_readme(text)
    assert [r["files"] for r in records] == [["a.webp"], ["wonders/b.webp", "wonders/c.webp"],
                                             ["d_0.webp", "d_background.webp"], ["screwDriver.webp"]]
    assert records[0]["source"] == "https://example.org/a" and records[1]["licence"] == "Public Domain"
    assert records[2]["credit"] == "C; based on a photo by D"


# ----------------------------------------------------------------------------- survey and build


@pytest.fixture()
def tiny_pool(tmp_path, monkeypatch):
    """Two packages: one with a Qt bundle (two photos, a README), one with an EXIF-rotated JPEG."""
    import weakloc.datasets.photo_pool as pool

    readme = (b"Copyright: Ann\nLicense: CC0-1.0\nFiles: one.webp\n\n"
              b"Copyright: Bob\nLicense: CC-BY-2.0\nFiles: two.png\n")
    bundle = write_bundle({"app/resource/README": readme, "app/resource/one.webp": _encode(_photo(1), "WEBP"),
                           "app/resource/two.png": _encode(_photo(2), "PNG"),
                           "app/resource/skip.svg": b"<svg/>"}, compress=("app/resource/README",))
    rotated = _encode(_photo(3, 160, 120), "JPEG", orientation=6)
    debs = {"game-data": _deb({"./usr/share/game/app.rcc": bundle}),
            "cam-files": _deb({"./usr/share/cam/IMG_1.jpg": rotated})}
    folder = tmp_path / "debs"
    folder.mkdir()
    packages = {}
    for name, data in debs.items():
        (folder / f"{name}_1.0_all.deb").write_bytes(data)
        packages[name] = PoolPackage(DebPackage(name, "1.0", _sha(data)), "CC-BY-SA-4.0", "Cam Owner")
    selections = (Selection("game-data", "./usr/share/game/app.rcc", ("*.webp", "*.png")),
                  Selection("cam-files", "./usr/share/cam/IMG*"))
    monkeypatch.setattr(pool, "PACKAGES", packages)
    monkeypatch.setattr(pool, "SELECTIONS", selections)
    rows = survey({n: folder / f"{n}_1.0_all.deb" for n in debs}, tmp_path / "pool.csv")
    return rows, packages, folder, rotated


def test_survey_records_each_photo_with_its_licence(tiny_pool):
    rows, _packages, _folder, rotated = tiny_pool
    by_name = {r["name"]: r for r in rows}
    assert sorted(by_name) == ["cam-files/cam/IMG_1.jpg", "game-data/app/one.webp", "game-data/app/two.png"]
    assert by_name["game-data/app/one.webp"]["licence"] == "CC0-1.0"
    assert by_name["game-data/app/two.png"]["credit"] == "Bob"
    assert by_name["cam-files/cam/IMG_1.jpg"]["licence"] == "CC-BY-SA-4.0"
    assert by_name["cam-files/cam/IMG_1.jpg"]["sha256"] == _sha(rotated)


def test_build_pool_extracts_checks_orients_and_caches(tiny_pool, tmp_path):
    rows, packages, folder, _rotated = tiny_pool
    out = build_pool(tmp_path / "pool", cache_dir=tmp_path / "cache", deb_dir=folder, rows=rows,
                     packages=packages, progress=False)
    import csv

    with open(out / "attribution.csv", newline="") as fh:
        attribution = {r["name"]: r for r in csv.DictReader(fh)}
    assert set(attribution) == {r["name"] for r in rows}
    cam = attribution["cam-files/cam/IMG_1.jpg"]
    # EXIF orientation 6: the 160x120 JPEG is a 120x160 photo once oriented
    assert (int(cam["width"]), int(cam["height"])) == (120, 160)
    assert read_rgb(out / cam["file"]).shape == (160, 120, 3)
    assert attribution["game-data/app/two.png"]["licence"] == "CC-BY-2.0"
    # a rebuild reads no package: the photos come from the cache
    for deb in folder.iterdir():
        deb.unlink()
    for deb in (tmp_path / "cache" / "debs").iterdir():
        deb.unlink()
    build_pool(tmp_path / "pool2", cache_dir=tmp_path / "cache", deb_dir=folder, rows=rows, packages=packages,
               progress=False)
    assert sorted(p.name for p in (tmp_path / "pool2").iterdir()) == sorted(p.name for p in out.iterdir())
    # a cached photo that changed on disk is refused, naming it
    cached = tmp_path / "cache" / "photos" / rows[0]["sha256"]
    cached.write_bytes(cached.read_bytes() + b"x")
    with pytest.raises(WeaklocError, match="fails its sha256"):
        build_pool(tmp_path / "pool3", cache_dir=tmp_path / "cache", rows=rows, packages=packages, progress=False)
    assert not (tmp_path / "pool3").exists()


def test_build_pool_refuses_a_photo_whose_bytes_differ_from_the_pin(tiny_pool, tmp_path):
    rows, packages, folder, _rotated = tiny_pool
    rows = [dict(r, sha256="0" * 64) if r["name"].endswith("one.webp") else r for r in rows]
    with pytest.raises(WeaklocError, match="photo game-data/app/one.webp has sha256 .* pinned 000000000000"):
        build_pool(tmp_path / "pool", cache_dir=tmp_path / "cache", deb_dir=folder, rows=rows, packages=packages,
                   progress=False)
    assert not (tmp_path / "pool").exists()


def test_the_shipped_pool_list():
    """The pinned list: 319 photos of 7 packages, unique, each with a licence; no evaluation package."""
    rows = pool_rows(POOL_CSV)
    assert len(rows) == 319
    assert len({r["name"] for r in rows}) == len(rows) == len({r["sha256"] for r in rows})
    counts = {p: sum(r["package"] == p for r in rows) for p in {r["package"] for r in rows}}
    assert counts == {"gcompris-qt-data": 267, "tuxpaint-data": 21, "lxqt-themes": 11, "forensics-samples-files": 6,
                      "palapeli-data": 5, "scribus-template": 8, "python3-scipy": 1}
    assert all(r["licence"] for r in rows)


# ----------------------------------------------------------------------------- the generator on a pool


@pytest.fixture()
def built_pool(tiny_pool, tmp_path):
    rows, packages, folder, _rotated = tiny_pool
    return build_pool(tmp_path / "pool", cache_dir=tmp_path / "cache", deb_dir=folder, rows=rows,
                      packages=packages, progress=False)


def test_pool_photo_set_adds_the_package_photos_and_no_portrait(built_pool):
    s = SyntheticSettings.from_section(dict(size=64, photos="debian"))
    photos = photo_set(s, built_pool)
    assert {"game-data/app/one.webp", "cam-files/cam/IMG_1.jpg", "chelsea", "china"} <= set(photos.names)
    assert not {"astronaut", "grace_hopper"} & (set(photos.names) | {p.name for p in SOURCE_PHOTOS})
    assert len(SOURCE_PHOTOS) == 10
    assert list(photos.names) == sorted(photos.names)
    with pytest.raises(WeaklocError, match="photos: debian needs the photo pool"):
        photo_set(s)


def test_split_by_photo_keeps_every_photo_in_one_split(built_pool):
    s = SyntheticSettings.from_section(dict(size=64, photos="debian", split_by="photo", train_size=48,
                                            region_area=(0.05, 0.3)))
    photos = photo_set(s, built_pool, (0.6, 0.2, 0.2), seed=3)
    split_of = dict(zip(photos.names, photos.splits, strict=True))
    assert {v for v in split_of.values()} == {"train", "val", "test"}
    seen: dict[str, set] = {}
    for i in range(60):
        smp = generate_sample(i, 3, s, photos)
        assert smp.split in ("train", "val", "test")
        assert smp.mask.shape == ((48, 48) if smp.split == "train" else (64, 64))
        for part in smp.recipe.split("; "):
            for key in ("photo=", "donor="):
                if part.startswith(key):
                    name = part[len(key):].split(" ")[0]
                    assert split_of[name] == smp.split, smp.recipe
                    seen.setdefault(name, set()).add(smp.split)
    assert all(len(v) == 1 for v in seen.values())
    assert generate_sample(7, 3, s, photos).data == generate_sample(7, 3, s, photos).data


def test_post_processing_is_applied_in_both_classes_and_is_deterministic():
    s = SyntheticSettings.from_section(dict(size=64, post={"fraction": 1.0, "quality_range": [50, 55]}))
    samples = [generate_sample(i, 0, s) for i in range(40)]
    ops = {part.split(" ")[0] for smp in samples for part in smp.recipe.split("; ") if part.startswith("post=")}
    assert ops == {"post=jpeg", "post=blur", "post=noise", "post=resize"}
    assert {smp.label for smp in samples if "post=" in smp.recipe} == {0, 1}
    for smp in samples:
        if "post=jpeg" in smp.recipe:
            assert smp.suffix == ".jpg" and any(f"q3={q} " in smp.recipe for q in range(50, 56))
        if "post=resize" in smp.recipe:
            side = smp.mask.shape[0]
            assert 32 <= side < 64
            assert Image.open(io.BytesIO(smp.data)).size == (smp.mask.shape[1], smp.mask.shape[0])
    assert [generate_sample(i, 0, s).data for i in range(40)] == [smp.data for smp in samples]
    # fraction 0 (the default) leaves every image as it was
    plain = SyntheticSettings.from_section(dict(size=64))
    assert not any("post=" in generate_sample(i, 0, plain).recipe for i in range(40))


def test_settings_that_cannot_work_are_refused_with_the_key():
    with pytest.raises(WeaklocError, match="train_size: needs split_by: photo"):
        SyntheticSettings.from_section(dict(size=64, train_size=32))
    with pytest.raises(WeaklocError, match="post.blur_kernels: 4 is even"):
        SyntheticSettings.from_section(dict(size=64, post={"blur_kernels": [3, 4]}))
    with pytest.raises(WeaklocError, match="post.resize_range: minimum 0.9 is above maximum 0.5"):
        SyntheticSettings.from_section(dict(size=64, post={"resize_range": [0.9, 0.5]}))


def test_prepare_keeps_the_generators_splits(built_pool, tmp_path):
    config = validate_config({"dataset": {"name": "synthetic", "seed": 1, "splits": {"train": 0.6, "val": 0.2,
                                                                                    "test": 0.2},
                                          "synthetic": {"n_images": 30, "size": 64, "photos": "debian",
                                                        "split_by": "photo", "train_size": 48}}})
    manifest = prepare_dataset(config, tmp_path / "prepared", progress=False, photo_pool=built_pool)
    df = read_manifest(manifest)
    assert set(df["split"]) == {"train", "val", "test"}
    assert (df.loc[df["split"] == "train", "width"] == 48).all()
    assert (df.loc[df["split"] != "train", "width"] == 64).all()
    hosts = df["source"].str.extract(r"photo=(\S+);")[0]
    assert hosts.groupby(hosts).apply(lambda g: df.loc[g.index, "split"].nunique()).max() == 1


def test_cli_names_the_missing_pool(tmp_path):
    """`weakloc data prepare` with photos: debian and no pool: one line saying how to build it."""
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: {synthetic: {n_images: 8, size: 64, photos: debian}}\n")
    done = subprocess.run([sys.executable, "-m", "weakloc.cli", "data", "prepare", "--config", str(cfg), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "weakloc data photos --out data/photos/debian" in done.stderr
    assert not (tmp_path / "out").exists()


def test_photo_files_are_the_packages_bytes(built_pool, tiny_pool):
    rows = tiny_pool[0]
    for row in rows:
        files = [p for p in Path(built_pool).iterdir() if p.name != "attribution.csv"]
        assert any(_sha(p.read_bytes()) == row["sha256"] for p in files), row["name"]


def test_holdout_images_come_from_the_test_photos(built_pool, tmp_path):
    """A holdout split (image-level only) shares the test split's photos and no others."""
    config = validate_config({"dataset": {"name": "synthetic", "seed": 2,
                                          "splits": {"train": 0.5, "val": 0.2, "test": 0.1, "holdout": 0.2},
                                          "synthetic": {"n_images": 40, "size": 64, "photos": "debian",
                                                        "split_by": "photo"}}})
    df = read_manifest(prepare_dataset(config, tmp_path / "prepared", progress=False, photo_pool=built_pool))
    assert set(df["split"]) == {"train", "val", "test", "holdout"}
    hosts = df["source"].str.extract(r"photo=(\S+);")[0]
    by_split = {s: set(hosts[df["split"] == s]) for s in ("train", "val", "test", "holdout")}
    assert not by_split["holdout"] & (by_split["train"] | by_split["val"])
    assert len(read_manifest(tmp_path / "prepared" / "manifest.csv", split=("test", "holdout"))) == \
        int((df["split"].isin(["test", "holdout"])).sum())


def test_assign_splits_with_a_holdout_fraction():
    from weakloc.datasets.prepare import assign_splits

    ids = [f"im{i:03d}" for i in range(200)]
    labels = [i % 2 for i in range(200)]
    plain = assign_splits(ids, labels, {"train": 0.7, "val": 0.1, "test": 0.2}, 0)
    with_holdout = assign_splits(ids, labels, {"train": 0.7, "val": 0.1, "test": 0.1, "holdout": 0.1}, 0)
    assert {s: with_holdout.count(s) for s in set(with_holdout)} == {"train": 140, "val": 20, "test": 20, "holdout": 20}
    # train and val do not move; holdout takes half of the former test images
    assert all(a == b for a, b in zip(plain, with_holdout, strict=True) if a in ("train", "val"))
    assert all(a == "test" for a, b in zip(plain, with_holdout, strict=True) if b == "holdout")
