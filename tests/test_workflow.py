"""The Snakemake workflow and DVC, run for real in a temporary copy of the project.

The smoke study (configs/smoke.yaml) runs the whole DAG end to end: every table and figure
must exist and every number must be finite. These are the slowest tests (a few minutes).
"""

import json
import math
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
import torch

from project import BIN, ENV, ROOT, assert_same_core, copy_project, run, snakemake


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
    for name in ["localization", "detection", "ablation_fusion_segmenter", "ablation_prior", "ablation_sel",
                 "ablation_selftrain", "baselines"]:
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext} missing or empty"
        frame = pd.read_csv(tables / f"{name}.csv")
        assert len(frame) > 0, name
    localization = pd.read_csv(tables / "localization.csv")
    assert len(localization) == 3 + 4 + 3 + 2  # blocks, fusions, main fusion x (2 segmenters + all), 2 peer rules
    assert list(localization["row"])[-2:] == ["EdgeCAM-style", "SEPL-style"]
    assert {"pixel_f1_mean", "combined_f1_mean"} <= set(pd.read_csv(tables / "detection.csv").columns)
    grid = pd.read_csv(tables / "ablation_fusion_segmenter.csv")
    assert len(grid) == 4  # every fusion, each refined with every segmenter set
    selftrain = pd.read_csv(tables / "ablation_selftrain.csv")  # selftrain.rounds: 1 in the smoke config
    assert [r.split(":")[0] for r in selftrain["row"]] == ["round 0", "round 0", "round 1", "round 1"]
    assert selftrain["image_auc_mean"].notna().all()
    student = torch.load(smoke / "checkpoints/synthetic/st1/seed0/wcbnet.pt", weights_only=True)["meta"]
    assert student["self_training"][0]["teacher"] == "checkpoints/synthetic/seed0/wcbnet.pt"
    assert (smoke / "checkpoints/synthetic/st1/seed0/pseudo/pseudo.csv").is_file()
    summary = json.loads((tables / "summary.json").read_text())
    numbers = list(leaves(summary))
    assert len(numbers) > 20 and all(math.isfinite(v) for v in numbers)
    detection = json.loads((smoke / "results/synthetic/seed0/detect/metrics.json").read_text())
    assert 0.0 <= detection["auc"] <= 1.0
    figures = sorted((smoke / "results/synthetic/figures").glob("*.png"))
    assert len(figures) >= 4 and all(f.stat().st_size > 5_000 for f in figures)


@pytest.mark.slow
def test_smoke_study_builds_the_protocol_tables_and_figure(smoke):
    """Cross-dataset (a second synthetic set), robustness, quoted literature, the robustness figure."""
    protocol = smoke / "results/synthetic/protocol"
    for name in ("cross_dataset", "robustness", "literature"):
        for ext in ("csv", "md", "tex"):
            assert (protocol / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext} missing or empty"
    cross = pd.read_csv(protocol / "cross_dataset.csv").set_index("row")
    assert {"synthetic:f1_mean", "synthshift:f1_mean", "synthshift:combined_f1_mean",
            "synthshift:auc_mean"} <= set(cross.columns)
    assert {"EdgeCAM-style", "SEPL-style", "ELA", "BLK"} <= set(cross.index)
    values = cross[[c for c in cross.columns if c.endswith("_mean") and "image_f1" not in c]].loc[["EdgeCAM-style"]]
    assert values.notna().all(axis=None) and ((values >= 0) & (values <= 1)).all(axis=None)
    robust = pd.read_csv(protocol / "robustness.csv")
    assert {"none_mean", "jpeg-70_mean", "resize-0.5_mean"} <= set(robust.columns) and len(robust) == 3  # ours + 2
    quoted = pd.read_csv(protocol / "literature.csv")
    assert len(quoted) == 5 and (protocol / "literature.md").read_text().startswith("### Quoted from the literature")
    shift = smoke / "results/synthetic/cross/synthshift/tables"
    assert len(pd.read_csv(shift / "localization.csv")) == 1 + 1 + 2  # fused, refined, peers
    assert (shift / "detection.csv").is_file()
    assert (smoke / "results/synthetic/figures/robustness.png").stat().st_size > 5_000


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


PUBLIC_SETS = ("casia2", "casia1", "columbia", "coverage")


@pytest.mark.parametrize("name", PUBLIC_SETS)
def test_public_dataset_dry_run_lists_download_and_prepare(tmp_path, name):
    proj = copy_project(tmp_path)
    out = snakemake("-n", "--configfile", "configs/public.yaml", f"configs/{name}.yaml", cwd=proj).stdout
    for rule in ("download", "prepare", "train", "refine", "tables"):
        assert f"rule {rule}:" in out or f"\n{rule} " in out or f" {rule}\n" in out, f"{rule} not planned"
    assert f"data/raw/{name}" in out


@pytest.mark.parametrize("name", PUBLIC_SETS)
def test_public_dataset_configs_write_out_their_split(name):
    """Each public set names its own split; none inherits the synthetic default's 94/4/2."""
    import yaml

    ds = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())["dataset"]
    assert ds["name"] == name
    assert set(ds["splits"]) == {"train", "val", "test"} and sum(ds["splits"].values()) == pytest.approx(1.0)
    assert ds["splits"]["test"] >= 0.1


def test_protocol_wscl_dry_run_trains_on_casia2_and_scores_the_others(tmp_path):
    proj = copy_project(tmp_path)
    out = snakemake("-n", "-p", "--configfile", "configs/protocol-wscl.yaml", cwd=proj).stdout
    assert "checkpoints/casia2/seed0/wcbnet.pt" in out
    for name in ("casia1", "columbia", "coverage"):
        assert f"data/raw/{name}" in out and f"data/prepared/{name}" in out
        assert f"--checkpoint checkpoints/casia2/seed0/wcbnet.pt --out results/casia2/cross/{name}/seed0/cams" in out
        assert f"results/casia2/cross/{name}/tables" in out
    assert "results/casia2/cross/casia1/seed0/peer/attention/edgecam" in out  # every step reaches the evaluation sets
    for rule in ("protocol_tables", "robustness", "perturb", "peer_refine", "figure_robustness"):
        assert f"rule {rule}:" in out or f"{rule} " in out, f"{rule} not planned"
    assert "jpeg-50" in out and "blur-23" in out and "noise-23" in out and "resize-0.75" in out
    assert "--literature docs/literature/quoted.csv" in out


def test_config_typo_stops_with_the_key_named(tmp_path):
    proj = copy_project(tmp_path)
    out = run([BIN / "snakemake", "-n", "--config", "train={'epcohs': 3}"], proj, check=False)
    assert out.returncode != 0
    assert "train.epcohs" in out.stdout + out.stderr


@pytest.mark.slow
def test_dvc_push_then_pull_restores_without_recomputing(smoke, tmp_path):
    """Prepared data (evaluation sets included) and checkpoints survive dvc push -> fresh clone ->
    dvc pull; nothing reruns and the plan prepares nothing.

    The outputs are the smoke study's (a real Snakemake run): a project whose config.yaml is the
    smoke config gets them as `snakemake models` left them, and DVC tracks them from there."""
    remote = tmp_path / "remote"
    a = copy_project(tmp_path / "a")
    shutil.copy(a / "configs/smoke.yaml", a / "config.yaml")  # the params dvc.yaml tracks
    for out in ("data/prepared/synthetic", "data/prepared/synthshift", "checkpoints/synthetic"):
        shutil.copytree(smoke / out, a / out)
    run(["git", "init", "-q"], a)
    run(["git", "add", "-A"], a)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], a)
    out = snakemake("-n", "--cores", "1", "models", cwd=a)
    assert "Nothing to be done" in out.stdout + out.stderr  # the smoke study's checkpoints, all of them
    dvc = BIN / "dvc"
    run([dvc, "remote", "add", "--local", "-d", "store", str(remote)], a)
    run([dvc, "commit", "--force"], a)  # `make push`
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
    assert (b / "data/prepared/synthshift/manifest.csv").is_file()
    plan = snakemake("-n", "--cores", "1", "--quiet", "rules", cwd=b).stdout  # the whole study's jobs per rule
    assert "tables" in plan and not re.search(r"^\s*prepare\s", plan, re.M), plan


# --------------------------------------------------------------------------- reliability

@pytest.mark.slow
def test_three_shards_beside_the_smoke_study_give_its_bytes(smoke, sharded):
    """Two guarantees in one run from scratch (prepare and training included) of the smoke
    study's core (tests/project.py: the files every sharded step lies on, with their scores):

    - sharding changes nothing: with ``shards.count = 3`` every per-image step (segment, cams,
      fuse, refine, baseline) runs as 3 jobs of uneven size (8 test images) and a merge
      (docs/cluster.md), and the merged folders and the scores are the one-job run's files;
    - determinism whatever the load: the run shares 2 cores with the smoke study and the rest of
      the suite (tests/conftest.py), its jobs are timed differently from the smoke study's, and
      the checkpoint and image scores are the same bytes (no wall-clock stop).

    The tables are functions of these files (the smoke fixture checks them). A difference names
    the file; either cause fails the test."""
    proj, log = sharded
    for step in ("segment", "cams", "fuse", "refine", "baseline"):
        assert f"{step}_shard" in log and f"{step}_merge" in log, step
    assert_same_core(smoke, proj)
    assert not list(proj.glob("results/**/shards/**/*-of-3"))  # the shard folders are temporary


@pytest.mark.slow
def test_a_killed_workflow_job_resumes_and_gives_the_same_maps(tmp_path):
    """Fault injection through Snakemake: SIGKILL the whole run while a baseline job is half done;
    `snakemake --unlock` and the same command again compute only what is missing."""
    import signal
    import time

    proj = copy_project(tmp_path / "p")
    (proj / "bigger.yaml").write_text("dataset:\n  synthetic: {n_images: 60, size: 256}\n")
    args = ["--cores", "1", "--configfile", "configs/smoke.yaml", "bigger.yaml"]
    target = "results/synthetic/baselines/blk"
    work = proj / "results/synthetic/baselines/.blk.partial"
    snakemake("data/prepared/synthetic", *args, cwd=proj)  # targets first: --configfile takes what follows
    proc = subprocess.Popen([BIN / "snakemake", target, *args], cwd=proj, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (work.is_dir() and len(list(work.glob("[!.]*.png"))) >= 3):
            assert proc.poll() is None, "the baseline job finished before it could be killed"
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list(work.glob("[!.]*.png")))
    n_test = len(pd.read_csv(proj / "data/prepared/synthetic/manifest.csv").query("split == 'test'"))
    assert 3 <= done < n_test and not (proj / target).exists()
    snakemake("--unlock", *args, cwd=proj)
    snakemake(target, *args, cwd=proj)
    log = (proj / "logs/baseline/synthetic/blk.log").read_text()
    assert f"{n_test - done} maps written, {done} kept" in log, log[-500:]
    clean = tmp_path / "clean"
    run([BIN / "weakloc", "baseline", "blk", "--manifest", proj / "data/prepared/synthetic/manifest.csv",
         "--split", "test", "--out", clean], proj)
    got = {p.name: p.read_bytes() for p in (proj / target).iterdir() if p.name != ".snakemake_timestamp"}
    assert got == {p.name: p.read_bytes() for p in clean.iterdir()} and len(got) == n_test
