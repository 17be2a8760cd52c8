"""Downloads through pooch from a local HTTP server, and safe archive extraction."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from weakloc.config import validate_config
from weakloc.datasets import DATASETS, download_dataset, extract_archive, fetch, prepare_dataset
from weakloc.datasets.spec import Download
from weakloc.errors import WeaklocError
from weakloc.manifest import read_manifest


@pytest.fixture()
def server(tmp_path):
    """Serve ``tmp_path / "www"`` on 127.0.0.1 at an ephemeral port; yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_checks_sha256_and_extracts(server, tmp_path):
    www, base = server
    archive = _tar_gz(www / "small.tar.gz", {"pack/a.txt": b"hello", "pack/sub/b.txt": b"world"})
    item = Download(f"{base}/small.tar.gz", _sha(archive), "small.tar.gz")
    got = fetch(item, tmp_path / "cache", progress=False)
    assert got.read_bytes() == archive.read_bytes()
    out = extract_archive(got, tmp_path / "x")
    assert (out / "pack" / "sub" / "b.txt").read_bytes() == b"world"


def test_fetch_reports_checksum_mismatch_and_missing_url(server, tmp_path):
    www, base = server
    _tar_gz(www / "small.tar.gz", {"a.txt": b"hello"})
    with pytest.raises(WeaklocError, match="checksum mismatch"):
        fetch(Download(f"{base}/small.tar.gz", "0" * 64, "small.tar.gz"), tmp_path / "cache", retries=0, progress=False)
    with pytest.raises(WeaklocError, match="download failed"):
        fetch(Download(f"{base}/absent.zip", None, "absent.zip"), tmp_path / "cache2", retries=0, progress=False)


def test_download_dataset_fetches_public_masks_from_their_url(server, tmp_path, monkeypatch):
    """CASIA 1.0: images from a hand-downloaded archive, masks fetched by pooch, then prepared."""
    www, base = server
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    jpg = io.BytesIO()
    Image.fromarray(img).save(jpg, format="JPEG", quality=90)
    stem = "Sp_D_CND_A_pla0005_pla0023_0281"
    images = _tar_gz(tmp_path / "casia1.tar.gz", {"CASIA 1.0 dataset/Au/Au_ani_0001.jpg": jpg.getvalue(),
                                                   f"CASIA 1.0 dataset/Modified Tp/Tp/Sp/{stem}.jpg": jpg.getvalue()})
    mask = np.zeros((24, 32), np.uint8)
    mask[2:10, 3:12] = 255
    with zipfile.ZipFile(www / "gt.zip", "w") as zf:
        zf.writestr(f"CASIA 1.0 groundtruth/Sp/{stem}_gt.png", _png_bytes(mask))
    gt = Download(f"{base}/gt.zip", _sha(www / "gt.zip"), "gt.zip")
    spec = dataclasses.replace(DATASETS["casia1"], masks_download=gt)
    monkeypatch.setitem(DATASETS, "casia1", spec)
    raw = download_dataset("casia1", tmp_path / "data" / "raw" / "casia1", archive=images, progress=False)
    assert list(raw.rglob(f"{stem}_gt.png"))
    assert sorted(p.name for p in (tmp_path / "data" / "raw").iterdir()) == ["casia1"]  # no temp folders left
    df = read_manifest(prepare_dataset(validate_config({"dataset": {"name": "casia1"}}), tmp_path / "prep",
                                       raw_dir=raw, progress=False)).set_index("id")
    assert df.loc[stem, "label"] == 1 and df.loc["Au_ani_0001", "label"] == 0
    assert Path(df.loc[stem, "image"]).read_bytes() == jpg.getvalue()


def test_download_without_url_or_archive_explains_the_manual_step(tmp_path):
    with pytest.raises(WeaklocError, match="no stable download URL.*OneDrive"):
        download_dataset("coverage", tmp_path / "raw" / "coverage", progress=False)
    assert not (tmp_path / "raw" / "coverage").exists()


def test_download_is_a_noop_for_generated_and_local_datasets(tmp_path):
    assert download_dataset("synthetic", tmp_path / "raw", progress=False) is None
    assert download_dataset("folder", tmp_path / "raw", progress=False) is None
    assert not (tmp_path / "raw").exists()


# ----------------------------------------------------------------------------- unsafe archives


def _evil_zip(path: Path, member: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(member), b"evil")
    return path


@pytest.mark.parametrize("member", ["../escape.txt", "a/../../escape.txt", "/abs/escape.txt"])
def test_zip_members_escaping_the_target_are_refused(tmp_path, member):
    archive = _evil_zip(tmp_path / "evil.zip", member)
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(WeaklocError) as err:
        extract_archive(archive, dest)
    assert str(archive) in str(err.value) and repr(member) in str(err.value)
    assert not (tmp_path / "deep" / "escape.txt").exists() and not (dest / "ok.txt").exists()


def test_zip_symlink_pointing_outside_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(WeaklocError, match="symbolic link"):
        extract_archive(archive, tmp_path / "dest")


def _tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_tar_members_escaping_the_target_are_refused(tmp_path, kind):
    if kind == "dotdot":
        info, data = tarfile.TarInfo("../escape.txt"), b"evil"
    elif kind == "absolute":
        info, data = tarfile.TarInfo("/tmp/weakloc-escape.txt"), b"evil"
    else:
        info, data = tarfile.TarInfo("inner/link"), b""
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname = "../../outside.txt" if kind == "symlink" else "../outside.txt"
    archive = _tar_with(tmp_path / f"{kind}.tar", info, data)
    dest = tmp_path / "dest"
    with pytest.raises(WeaklocError) as err:
        extract_archive(archive, dest)
    assert str(archive) in str(err.value) and info.name in str(err.value)
    assert not (dest / "ok.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/weakloc-escape.txt").exists()


def test_not_an_archive_is_reported(tmp_path):
    bogus = tmp_path / "data.rar"
    bogus.write_bytes(b"Rar!\x1a\x07\x00 not really")
    with pytest.raises(WeaklocError, match="not a zip or tar archive"):
        extract_archive(bogus, tmp_path / "dest")
    with pytest.raises(WeaklocError, match="archive not found"):
        extract_archive(tmp_path / "missing.zip", tmp_path / "dest")
