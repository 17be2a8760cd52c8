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
import torch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def run(args, cwd, check=True):
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
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
    for rule in ("protocol_tables", "robustness", "perturb", "peer_refine_cross", "figure_robustness"):
        assert f"rule {rule}:" in out or f"{rule} " in out, f"{rule} not planned"
    assert "jpeg-50" in out and "blur-23" in out and "noise-23" in out and "resize-0.75" in out
    assert "--literature docs/literature/quoted.csv" in out


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
    # the tracked params are the smoke study's, with one checkpoint (no SEL-ablation model, no student)
    import yaml

    cfg = yaml.safe_load((a / "configs/smoke.yaml").read_text())
    cfg["evaluate"]["sel_ablation"], cfg["selftrain"]["rounds"] = [], 0
    (a / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
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


# --------------------------------------------------------------------------- reliability

def _cpu_hog(n: int) -> subprocess.Popen:
    """``n`` busy processes beside the run (a loaded machine), killed by the caller."""
    code = "import multiprocessing as m\ndef spin():\n    while True: pass\n" \
           f"ps=[m.Process(target=spin) for _ in range({n})]\n[p.start() for p in ps]\n[p.join() for p in ps]\n"
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


@pytest.mark.slow
def test_four_shards_on_a_loaded_machine_give_the_idle_one_job_bytes(smoke, tmp_path):
    """Two guarantees in one run of the smoke study from scratch (prepare and training included):

    - determinism whatever the load: beside a CPU-hogging process (the machine oversubscribed)
      the checkpoint, summary.json and tables are the idle run's bytes (no wall-clock stop);
    - sharding changes nothing: with ``shards.count = 4`` every per-image step runs as 4 jobs
      and a merge (docs/cluster.md), and the merged folders are the one-job run's files.

    A difference names the file; either cause fails the test."""
    import signal

    proj = copy_project(tmp_path / "loaded4")
    (proj / "shards4.yaml").write_text("shards: {count: 4}\n")
    hog = _cpu_hog(1)
    try:
        out = snakemake("--cores", "2", "--configfile", "configs/smoke.yaml", "shards4.yaml", cwd=proj)
    finally:
        os.killpg(hog.pid, signal.SIGKILL)
        hog.wait()
    assert "refine_shard" in out.stdout + out.stderr and "cams_merge" in out.stdout + out.stderr
    assert (proj / "checkpoints/synthetic/seed0/wcbnet.pt").read_bytes() == \
        (smoke / "checkpoints/synthetic/seed0/wcbnet.pt").read_bytes()
    a, b = smoke / "results/synthetic", proj / "results/synthetic"
    assert json.loads((a / "tables/summary.json").read_text()) == json.loads((b / "tables/summary.json").read_text())
    assert (a / "tables/summary.json").read_bytes() == (b / "tables/summary.json").read_bytes()
    csvs = sorted(p.name for p in (a / "tables").glob("*.csv"))
    assert len(csvs) >= 5 and csvs == sorted(p.name for p in (b / "tables").glob("*.csv"))
    for name in csvs:
        assert (a / "tables" / name).read_bytes() == (b / "tables" / name).read_bytes(), name
    for folder in ["seed0/cams", "seed0/fused/wavelet", "seed0/refined/attention/all/default", "baselines/ela"]:
        files = sorted(p.relative_to(a / folder) for p in (a / folder).rglob("*") if p.is_file())
        assert len(files) >= 8 and files == sorted(p.relative_to(b / folder) for p in (b / folder).rglob("*")
                                                   if p.is_file()), folder
        for rel in files:
            assert (a / folder / rel).read_bytes() == (b / folder / rel).read_bytes(), f"{folder}/{rel}"
    assert not list(b.glob("**/shards/**/*-of-4"))  # the shard folders are temporary


@pytest.mark.slow
def test_a_killed_workflow_job_resumes_and_gives_the_same_maps(tmp_path):
    """Fault injection through Snakemake: SIGKILL the whole run while a baseline job is half done;
    `snakemake --unlock` and the same command again compute only what is missing."""
    import signal
    import time

    proj = copy_project(tmp_path / "p")
    (proj / "bigger.yaml").write_text("dataset:\n  synthetic: {n_images: 100, size: 256}\n")
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
