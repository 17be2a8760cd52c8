"""The SLURM profiles and a real single-node SLURM cluster (scripts/cluster.sh, docs/cluster.md).

The profile checks run everywhere. The end-to-end test runs the smoke study's core through
`--executor slurm` and locally and compares the files; it runs under `make test-cluster`
(which sets WEAKLOC_CLUSTER_TESTS=1, so `make test` does not run the study twice) and skips
with the reason when no cluster is up and none can be started here (not root, no apt-get).
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
import yaml

from project import BIN, CLUSTER_ENV, ROOT, SMOKE_CORE_FILES, SMOKE_CORE_FOLDERS, assert_same_core, copy_project, run

SCRIPT = ROOT / "scripts" / "cluster.sh"
PROFILES = {name: ROOT / "workflow" / "profiles" / name / "config.yaml" for name in ("slurm", "slurm-gpu")}
# segment: only the network segmenters (an expression of the wildcard)
GPU_RULES = {"train", "detect", "cams", "cams_shard", "pseudo_masks", "self_train"}


def profile(name: str) -> dict:
    return yaml.safe_load(PROFILES[name].read_text())


def workflow_rules(tmp_path) -> set[str]:
    """Every rule of the workflow, the shard and merge rules included (shards.count = 4)."""
    proj = copy_project(tmp_path / "rules")
    (proj / "shards4.yaml").write_text("shards: {count: 4}\n")
    out = run([BIN / "snakemake", "--list-rules", "--configfile", "configs/smoke.yaml", "shards4.yaml"], proj).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_has_the_settings_a_cluster_without_accounting_needs(name):
    cfg = profile(name)
    assert cfg["executor"] == "slurm"
    # sacct without slurmdbd makes the plugin wait forever; squeue needs MinJobAge >= 3x this delay
    assert cfg["slurm-status-command"] == "squeue"
    assert cfg["slurm-no-account"] is True
    delay = cfg["slurm-init-seconds-before-status-checks"]
    min_job_age = int(re.search(r"^MIN_JOB_AGE=(\d+)$", SCRIPT.read_text(), re.M)[1])
    assert 0 < 3 * delay <= min_job_age
    assert cfg["default-resources"]["slurm_partition"]
    assert isinstance(cfg["cores"], int) and cfg["cores"] >= 1  # rules use threads: workflow.cores
    for rule, res in cfg["set-resources"].items():
        assert res["mem_mb"] > 0 and res["runtime"] > 0, rule


def test_profiles_name_only_real_rules_and_gpu_only_where_used(tmp_path):
    rules = workflow_rules(tmp_path)
    assert {"segment_shard", "cams_merge", "refine_shard", "baseline_merge", "fuse_shard"} <= rules
    for name in PROFILES:
        unknown = set(profile(name)["set-resources"]) - rules
        assert not unknown, f"{PROFILES[name]}: set-resources for rules that do not exist: {unknown}"
    assert not any("gres" in res or "gpu" in res for res in profile("slurm")["set-resources"].values())
    gpu = profile("slurm-gpu")["set-resources"]
    assert {rule for rule, res in gpu.items() if res.get("gres") == "gpu:1"} == GPU_RULES
    # segment: a Python expression of the segmenter wildcard (evaluated by Snakemake per job)
    expr = gpu["segment"]["gres"]
    assert eval(expr, {"wildcards": type("W", (), {"segmenter": "sam"})}) == "gpu:1"
    assert eval(expr, {"wildcards": type("W", (), {"segmenter": "slic"})}) == ""
    assert gpu["segment_shard"]["gres"] == expr


def test_cluster_script_writes_a_conf_for_this_host():
    if subprocess.run(["bash", "-c", "command -v slurmd"], capture_output=True).returncode != 0:
        pytest.skip("slurmd is not installed (scripts/cluster.sh start installs it where it is root)")
    out = subprocess.run([SCRIPT, "conf"], capture_output=True, text=True, check=True).stdout
    host = os.uname().nodename
    assert f"SlurmctldHost={host}\n" in out
    node = re.search(r"^NodeName=(\S+) CPUs=(\d+) .*RealMemory=(\d+)", out, re.M)
    assert node and node[1] == host and int(node[2]) == os.cpu_count()
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert 0.5 * total_mb < int(node[3]) < total_mb  # a margin below the machine's memory
    assert re.search(r"^MinJobAge=(\d+)$", out, re.M)
    assert "AccountingStorageType=accounting_storage/none" in out


def test_cluster_script_usage_error():
    out = subprocess.run([SCRIPT, "bogus"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage:" in out.stderr


def start_cluster():
    """Start (or find) the cluster; skip with the script's reason when this machine cannot run one."""
    if not os.environ.get("WEAKLOC_CLUSTER_TESTS"):
        pytest.skip("the SLURM end-to-end run belongs to `make test-cluster` (WEAKLOC_CLUSTER_TESTS=1)")
    proc = subprocess.run([SCRIPT, "start"], capture_output=True, text=True)
    if proc.returncode == 3:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_smoke_study_on_slurm_equals_local_run(tmp_path):
    """The smoke study's core (tests/project.py: seed 0's checkpoint and image scores, block
    maps, a fusion, a refinement, a baseline and their scores; the tables are functions of these
    files) through the SLURM profile and locally: the same bytes, every job benchmarked."""
    sinfo = start_cluster()
    assert " idle " in sinfo or " mix " in sinfo
    slurm = copy_project(tmp_path / "slurm")
    local = copy_project(tmp_path / "local")
    target = [*SMOKE_CORE_FILES, *SMOKE_CORE_FOLDERS, "--configfile", "configs/smoke.yaml"]  # --configfile last
    t0 = time.monotonic()
    # SIGINT, not SIGTERM, stops a stuck Snakemake (SIGTERM waits for running jobs)
    proc = subprocess.run(["timeout", "-s", "INT", "900", BIN / "snakemake", "--profile", "workflow/profiles/slurm",
                           "--cores", "2", *target], cwd=slurm, env=CLUSTER_ENV, capture_output=True, text=True)
    t_slurm = time.monotonic() - t0
    if proc.returncode != 0:  # the jobs' own logs say why
        job_logs = sorted((slurm / ".snakemake/slurm_logs").rglob("*.log"), key=os.path.getmtime)[-3:]
        tails = "\n".join(f"--- {p}\n" + p.read_text(errors="replace")[-1500:] for p in job_logs)
        raise AssertionError(f"slurm run failed ({proc.returncode}):\n{proc.stderr[-6000:]}\n{tails}")
    assert "SLURM run ID" in proc.stderr  # really went through the executor
    jobs = len(re.findall(r"^rule \w+:$", proc.stdout + proc.stderr, re.M))
    t0 = time.monotonic()
    run([BIN / "snakemake", "--cores", "2", *target], local, env=CLUSTER_ENV)
    t_local = time.monotonic() - t0
    print(f"\nsmoke study's core ({jobs} jobs): SLURM executor {t_slurm:.0f} s, local {t_local:.0f} s")
    assert_same_core(slurm, local)
    benches = sorted((slurm / "logs/benchmarks").rglob("*.tsv"))
    assert {p.relative_to(slurm / "logs/benchmarks").parts[0] for p in benches} >= {
        "train", "detect", "cams", "segment", "refine", "baseline", "score"}


def test_gpu_profile_requests_a_gpu_per_job_as_snakemake_evaluates_it(tmp_path):
    """A dry run with the GPU profile: train and sam get gres=gpu:1, slic none (the expression)."""
    proj = copy_project(tmp_path / "gpu")
    (proj / "sam.yaml").write_text("segmenters: {use: [slic, sam]}\n")
    out = run([BIN / "snakemake", "-n", "--profile", "workflow/profiles/slurm-gpu", "--cores", "2",
               "--configfile", "configs/smoke.yaml", "sam.yaml"], proj).stdout
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)\n(?:    .*\n)*?    resources: (.*)\n",
                      out, re.M)
    gres = {}  # (rule, its segmenter or root) -> the gres it asks for; every root's segment jobs alike
    for rule, wc, res in jobs:
        fields = dict(kv.split("=", 1) for kv in wc.split(", "))
        gres[(rule, fields.get("segmenter") or fields.get("root"))] = re.search(r"gres=([^,]*)", res)[1] \
            if "gres=" in res else None
    assert gres[("segment", "sam")] == "gpu:1"
    assert gres[("segment", "slic")] == ""
    assert gres[("train", "synthetic")] == "gpu:1"
    assert all(g is None for (rule, _), g in gres.items() if rule in ("refine", "score", "fuse", "baseline"))
