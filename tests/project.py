"""The project as the workflow tests run it: a temporary copy of a fresh clone, and Snakemake.

`ENV` is the environment of every `snakemake`, `weakloc` and `dvc` the tests start. Snakemake's
SLURM plugin, when it is imported (by every `snakemake` start), asks `scontrol show config` for
the controller's MinJobAge; where SLURM is installed but its controller is down (this machine
between two `make test-cluster` runs) that call waits MessageTimeout - 1 = 9 s before it fails,
and a suite that starts Snakemake thirty times would wait minutes for nothing. While no controller
answers, `ENV` points SLURM_CONF at a copy of the configuration with MessageTimeout=1 (the call
then fails at once, as it would without SLURM); `CLUSTER_ENV` keeps the real one for the runs that
talk to a cluster (tests/test_cluster.py).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from weakloc import layout

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLUSTER_ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def _controller_down(conf: Path) -> bool:
    """Whether ``conf`` names a slurmctld that refuses connections (False when it answers)."""
    text = conf.read_text(errors="replace")
    host = re.search(r"^SlurmctldHost=([^\s(]+)", text, re.M)
    port = re.search(r"^SlurmctldPort=(\d+)", text, re.M)
    if not host:
        return False
    try:
        socket.create_connection((host[1], int(port[1]) if port else 6817), timeout=1).close()
    except OSError:
        return True
    return False


def _fast_failing_slurm_conf() -> dict:
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    if shutil.which("scontrol") is None or not conf.is_file() or not _controller_down(conf):
        return {}
    folder = Path(tempfile.mkdtemp(prefix="weakloc-tests-slurm-"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / "slurm.conf"
    copy.write_text(re.sub(r"^MessageTimeout=.*$", "", conf.read_text(), flags=re.M) + "\nMessageTimeout=1\n")
    return {"SLURM_CONF": str(copy)}


ENV = {**CLUSTER_ENV, **_fast_failing_slurm_conf()}


def run(args, cwd, check=True, env=None):
    proc = subprocess.run(args, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def snakemake(*args, cwd):
    return run([BIN / "snakemake", *args], cwd)


def project_files():
    """The project's files as a fresh clone has them (tracked plus new, not ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [p for p in out if (ROOT / p).exists() or (ROOT / p).is_symlink()]


def copy_project(dest: Path) -> Path:
    for rel in project_files():
        src, dst = ROOT / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


# The part of the smoke study that every per-image step lies on: seed 0's checkpoint and image
# scores, its block maps, a fusion, a refinement (both segmenters) and a baseline, with their
# scores (the tables are functions of these files). Paths relative to the project.
_ROOT = layout.results_root("synthetic")
SMOKE_CORE_FILES = ["checkpoints/synthetic/seed0/wcbnet.pt", layout.detect_file(_ROOT, 0),
                    layout.score_file(_ROOT, 0, layout.refined_variant("attention", "all")),
                    layout.baseline_score_file(_ROOT, "ela")]
SMOKE_CORE_FOLDERS = [f"{_ROOT}/{folder}" for folder in ("seed0/cams", "seed0/fused/wavelet",
                                                         "seed0/refined/attention/all/default", "baselines/ela")]


def assert_same_core(a: Path, b: Path) -> None:
    """The smoke study's core files (above) of projects ``a`` and ``b`` are the same bytes;
    a difference names the file."""
    for name in SMOKE_CORE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for folder in SMOKE_CORE_FOLDERS:
        files = sorted(p.relative_to(a / folder) for p in (a / folder).rglob("*")
                       if p.is_file() and p.name != ".snakemake_timestamp")
        assert len(files) >= 8, folder
        assert files == sorted(p.relative_to(b / folder) for p in (b / folder).rglob("*")
                               if p.is_file() and p.name != ".snakemake_timestamp"), folder
        for rel in files:
            assert (a / folder / rel).read_bytes() == (b / folder / rel).read_bytes(), f"{folder}/{rel}"
