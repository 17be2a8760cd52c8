"""The Snakemake workflow and DVC, run for real in a temporary copy of the project.

The smoke study (configs/smoke.yaml) runs the whole DAG end to end: every table and figure
must exist and every number must be finite. These are the slowest tests (a few minutes).
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def run(args, cwd, check=True):
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


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


def snakemake(*args, cwd):
    return run([BIN / "snakemake", *args], cwd)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke study run once, end to end."""
    proj = copy_project(tmp_path_factory.mktemp("smoke"))
    snakemake("--cores", "2", "--configfile", "configs/smoke.yaml", cwd=proj)
    return proj


def leaves(node):
    """Every number in a JSON document (None, the std of a single seed, is skipped)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from leaves(value)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield float(node)


@pytest.mark.slow
def test_smoke_study_builds_every_table_and_figure(smoke):
    tables = smoke / "results/synthetic/tables"
    for name in ["localization", "detection", "ablation_fusion_segmenter", "ablation_prior", "ablation_sel", "baselines"]:
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext} missing or empty"
        frame = pd.read_csv(tables / f"{name}.csv")
        assert len(frame) > 0, name
    localization = pd.read_csv(tables / "localization.csv")
    assert len(localization) == 3 + 4 + 3  # blocks, fusions, main fusion x (2 segmenters + all)
    grid = pd.read_csv(tables / "ablation_fusion_segmenter.csv")
    assert len(grid) == 4  # every fusion, each refined with every segmenter set
    summary = json.loads((tables / "summary.json").read_text())
    numbers = list(leaves(summary))
    assert len(numbers) > 20 and all(math.isfinite(v) for v in numbers)
    detection = json.loads((smoke / "results/synthetic/seed0/detect/metrics.json").read_text())
    assert 0.0 <= detection["auc"] <= 1.0
    figures = sorted((smoke / "results/synthetic/figures").glob("*.png"))
    assert len(figures) >= 4 and all(f.stat().st_size > 5_000 for f in figures)


@pytest.mark.slow
def test_every_score_is_finite(smoke):
    scores = sorted((smoke / "results/synthetic").glob("**/scores/*.json"))
    assert len(scores) > 20
    for path in scores:
        data = json.loads(path.read_text())
        for key in ("f1", "iou", "mcc", "best_f1"):
            assert math.isfinite(data[key]), f"{path.name}: {key} = {data[key]}"


@pytest.mark.slow
def test_second_run_has_nothing_to_do(smoke):
    out = snakemake("-n", "--cores", "2", "--configfile", "configs/smoke.yaml", cwd=smoke)
    assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.slow
def test_report_builds(smoke):
    snakemake("--configfile", "configs/smoke.yaml", "--report", "report.html", cwd=smoke)
    html = (smoke / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "Tables" in html


def test_lint_is_clean(tmp_path):
    proj = copy_project(tmp_path)
    out = run([BIN / "snakemake", "--lint"], proj, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lints for" not in out.stdout + out.stderr


def test_casia2_dry_run_lists_download_and_prepare(tmp_path):
    proj = copy_project(tmp_path)
    out = snakemake("-n", "--configfile", "configs/casia2.yaml", cwd=proj).stdout
    for rule in ("download", "prepare", "train", "refine", "tables"):
        assert f"rule {rule}:" in out or f"\n{rule} " in out or f" {rule}\n" in out, f"{rule} not planned"


def test_config_typo_stops_with_the_key_named(tmp_path):
    proj = copy_project(tmp_path)
    out = run([BIN / "snakemake", "-n", "--config", "train={'epcohs': 3}"], proj, check=False)
    assert out.returncode != 0
    assert "train.epcohs" in out.stdout + out.stderr


@pytest.mark.slow
def test_dvc_push_then_pull_restores_without_recomputing(tmp_path):
    """Prepared data and checkpoints survive dvc push -> fresh clone -> dvc pull; nothing reruns."""
    remote = tmp_path / "remote"
    a = copy_project(tmp_path / "a")
    shutil.copy(a / "configs/smoke.yaml", a / "config.yaml")  # the tracked params are the smoke study's
    run(["git", "init", "-q"], a)
    run(["git", "add", "-A"], a)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], a)
    snakemake("--cores", "2", "models", cwd=a)
    dvc = BIN / "dvc"
    run([dvc, "remote", "add", "--local", "-d", "store", str(remote)], a)
    run([dvc, "commit", "--force", "prepare", "train"], a)
    run([dvc, "push"], a)
    run(["git", "add", "dvc.lock"], a)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"], a)

    b = tmp_path / "b"
    run(["git", "clone", "-q", str(a), str(b)], tmp_path)
    run([dvc, "remote", "add", "--local", "-d", "store", str(remote)], b)
    assert not (b / "checkpoints").exists()
    run([dvc, "pull"], b)
    ckpt = "checkpoints/synthetic/seed0/wcbnet.pt"
    assert (b / ckpt).read_bytes() == (a / ckpt).read_bytes()
    manifest = "data/prepared/synthetic/manifest.csv"
    assert (b / manifest).read_text() == (a / manifest).read_text()
    # What `make pull` does after dvc pull: DVC does not keep file times, Snakemake judges by them.
    snakemake("--cores", "1", "--touch", "models", cwd=b)
    out = snakemake("-n", "--cores", "1", "models", cwd=b)
    assert "Nothing to be done" in out.stdout + out.stderr
