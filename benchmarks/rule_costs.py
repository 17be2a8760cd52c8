"""Per-rule costs of a finished study (Snakemake `benchmark:` files) and a projection to another study.

    python benchmarks/rule_costs.py [--bench logs/benchmarks] [--config config.yaml] [--target configs/casia2.yaml]

Reads every ``logs/benchmarks/<rule>/<wildcards>.tsv`` (wall seconds ``s``, ``cpu_time``,
``max_rss`` of each job), the measured study's manifest (image counts per split and the test
images' mean size) and its training logs (epochs actually run), and prints, as Markdown:

1. **Measured**: per rule, the jobs, their wall and CPU seconds and peak memory, and the cost per
   unit of work (CPU seconds per test image; per training image-epoch for ``train``).
2. **Projected** (a model, not a measurement): the target study's wall time on 2 CPU cores, on one
   GPU node and on N such nodes. The target's jobs come from a Snakemake dry run of
   ``--target``, its image counts from that config; each job costs the measured CPU seconds per
   unit and pixel times the target's units and pixels. GPU-side numbers are the H200 anchors of
   ENVIRONMENT.md (measured on that machine with a ResNet-18-sized network, not with WCBnet):
   labelled as such in the output. Rules the measured study did not run are listed, not guessed.

Assumptions, printed with the numbers: per-core speed of a cluster or GPU node's CPU equals this
machine's; work spreads perfectly over cores within a node (a lower bound on wall time); costs
scale linearly with pixels; ``train`` runs all ``train.epochs`` (early stopping can only shorten it).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

from weakloc.config import load_config

# Work units: rules whose cost grows with the number of test images (``PER_TEST``), training
# image-epochs (``train``), all images (``prepare``); the rest are a fixed cost per job.
PER_TEST = {"detect", "cams", "segment", "baseline", "fuse", "refine", "score", "score_baseline", "peer", "peer_refine",
            "robustness", "robustness_baselines", "perturb"}
SHARD_SUFFIX = "_shard"
# Rules whose measured cost says nothing about another dataset's: the synthetic set is generated,
# a public one is unpacked and copied; downloads depend on the network.
NOT_COMPARABLE = {"prepare", "download"}

# H200 anchors (ENVIRONMENT.md, measured 2026-11-26 with torch 2.11; a ResNet-18-sized 6-channel CNN,
# bf16 autocast, channels_last): images/s.
GPU_TRAIN_256 = 10_262.0
GPU_INFER_512 = 5_726.0
SEL_PER_CORE_512 = 381.0  # SEL with Pillow, 512 px, one quality, per CPU core
SAM_GPU_16PTS = 0.19 + 0.015  # MobileSAM embedding + 16x16-point automatic masks, s/image
GPU_NODE_CORES = 16


def read_benchmarks(folder: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(folder.rglob("*.tsv")):
        rel = path.relative_to(folder)
        df = pd.read_csv(path, sep="\t")
        if df.empty:
            continue
        last = df.iloc[-1]  # a rerun appends nothing; repeats (`repeat(...)`) would be several rows
        shard = re.search(r"(\d+)-of-(\d+)", str(rel))
        rule = rel.parts[0]
        if rule == "segment":  # segment/<root>/<segmenter>/<key>[/<shard>].tsv
            rule = f"{rule}:{rel.parts[-3 if shard else -2]}"
        rows.append({"rule": rule, "job": str(rel.with_suffix("")), "s": float(last["s"]),
                     "cpu": float(last.get("cpu_time", 0.0) or 0.0), "rss_mb": float(last.get("max_rss", 0.0) or 0.0),
                     "shards": int(shard[2]) if shard else 1})
    if not rows:
        sys.exit(f"rule_costs: no benchmark files under {folder} (run the study first)")
    return pd.DataFrame(rows)


def dry_run_jobs(project: Path, configfiles: list[Path]) -> dict[str, int]:
    """Job counts per rule from `snakemake -n` of a study's config files."""
    out = subprocess.run([Path(sys.executable).parent / "snakemake", "-n", "--cores", "2", "--configfile",
                          *map(str, configfiles)], cwd=project, capture_output=True, text=True)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        sys.exit(f"rule_costs: dry run of {' '.join(map(str, configfiles))} failed:\n{text[-2000:]}")
    stats = text.split("Job stats:", 1)[1].split("total", 1)[0]
    jobs = {}
    for line in stats.splitlines():
        m = re.fullmatch(r"\s*([A-Za-z_][\w]*)\s+(\d+)\s*", line)
        if m and m[1] not in ("job", "all"):
            jobs[m[1]] = int(m[2])
    return jobs


def measured_units(project: Path, cfg: dict) -> dict:
    from weakloc.layout import parse_st_folder
    from weakloc.manifest import read_manifest

    name = cfg["dataset"]["name"]
    manifest = project / "data" / "prepared" / name / "manifest.csv"
    df = read_manifest(manifest)
    test = df[df["split"] == "test"]
    logs = (project / "checkpoints" / name).rglob("train_log.csv")  # the trained models', not the students'
    epochs = [len(pd.read_csv(p)) for p in logs if not any(parse_st_folder(part) for part in p.parts)]
    return {"n_all": len(df), "n_train": int((df["split"] == "train").sum()), "n_test": len(test),
            "pixels": float((test["width"] * test["height"]).mean()),
            "epochs": (sum(epochs) / len(epochs)) if epochs else float(cfg["train"]["epochs"]),
            "crop": cfg["train"]["crop_size"]}


def base_rule(rule: str) -> str:
    """``segment_shard:sam`` -> ``segment``; ``cams_merge`` -> ``cams``."""
    return rule.split(":")[0].removesuffix(SHARD_SUFFIX).removesuffix("_merge")


def units(rule: str, u: dict, shards: int = 1) -> float:
    base = base_rule(rule)
    if base == "train":
        return u["n_train"] * u["epochs"]
    if base == "prepare":
        return u["n_all"]
    if base in PER_TEST:
        return u["n_test"] / shards
    return 1.0


def pixels_scale(rule: str, u: dict) -> float:
    base = base_rule(rule)
    if base == "train":
        return float(u["crop"]) ** 2  # training crops, not full images
    return u["pixels"] if base in PER_TEST or base == "prepare" else 1.0


def fmt_s(seconds: float) -> str:
    if seconds != seconds:
        return "not measured"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", default=".", help="project folder of the finished study (default .)")
    ap.add_argument("--bench", default=None, help="benchmark folder (default PROJECT/logs/benchmarks)")
    ap.add_argument("--config", nargs="+", default=["config.yaml"],
                    help="the measured study's config files, in Snakemake's order (default config.yaml)")
    ap.add_argument("--target", nargs="+", default=["configs/public.yaml", "configs/casia2.yaml"],
                    help="config files of the projected study, on top of the first --config file "
                         "(default configs/public.yaml configs/casia2.yaml)")
    ap.add_argument("--target-images", type=int, default=12_614,
                    help="images of the target dataset (CASIA 2.0: 12,614)")
    ap.add_argument("--target-pixels", type=float, default=900 * 600,
                    help="mean pixels per target image (default 900x600, CASIA 2.0's largest: an upper bound)")
    ap.add_argument("--nodes", type=int, nargs="+", default=[4, 16], help="node counts of the N-node projection")
    args = ap.parse_args()

    project = Path(args.project).resolve()
    bench = read_benchmarks(Path(args.bench) if args.bench else project / "logs" / "benchmarks")
    cfg = load_config([project / c for c in args.config])  # merged as Snakemake merges --configfile
    u = measured_units(project, cfg)

    print(f"## Measured per-rule costs ({' + '.join(args.config)}; {u['n_test']} test images of "
          f"{u['pixels']:.0f} px on average, {u['n_train']} training images x {u['epochs']:.1f} epochs)\n")
    print("| rule | jobs | wall s (sum) | wall s (max job) | CPU s (sum) | peak RSS MB (max) | CPU s per unit | unit |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    # Every job pays a fixed start-up (Python, imports, reading the model): taken as the cheapest
    # job's CPU time and kept out of the per-unit costs, so a small study does not inflate them.
    overhead = float(bench["cpu"][bench["cpu"] > 0].min())
    per_unit: dict[str, float] = {}
    for rule, g in sorted(bench.groupby("rule"), key=lambda kv: kv[0]):
        work = sum(units(rule, u, s) for s in g["shards"])
        cpu = g["cpu"].sum()
        key = rule.replace(SHARD_SUFFIX, "")  # shards and one job measure the same per-unit cost
        per_unit[key] = max(cpu - overhead * len(g), 0.0) / work / pixels_scale(rule, u)  # CPU s per unit, pixel
        unit = {"train": "train image-epoch", "prepare": "image"}.get(base_rule(rule),
                                                                      "test image" if units(rule, u) != 1 else "job")
        rss = g["rss_mb"].max()
        print(f"| {rule} | {len(g)} | {g['s'].sum():.1f} | {g['s'].max():.1f} | {cpu:.1f} | "
              f"{rss:.0f} | {max(cpu - overhead * len(g), 0.0) / work:.4f} | {unit} |".replace("| 0 |", "| - |"))
    print(f"\nTotal: {len(bench)} jobs, {bench['s'].sum():.0f} s of job wall time, {bench['cpu'].sum():.0f} CPU s. "
          f"CPU s per unit leave out a fixed {overhead:.2f} CPU s per job (the cheapest job's CPU time: start-up).")

    target_files = [project / args.config[0], *(project / c for c in args.target)]
    target_cfg = load_config(list(target_files))
    jobs = dry_run_jobs(project, target_files[1:])
    splits = target_cfg["dataset"]["splits"]
    t = {"n_all": args.target_images, "n_train": args.target_images * splits["train"],
         "n_test": args.target_images * splits["test"], "pixels": args.target_pixels,
         "epochs": float(target_cfg["train"]["epochs"]), "crop": target_cfg["train"]["crop_size"]}
    print(f"\n## Projected: {' + '.join(args.target)} ({t['n_all']} images, {t['n_train']:.0f} train, "
          f"{t['n_test']:.0f} test, "
          f"{t['pixels']:.0f} px per image, {t['epochs']:.0f} epochs) [projection, not measured]\n")
    print("| rule | jobs | CPU s per job (projected) | on 2 CPU cores | on one GPU node | basis on the GPU node |")
    print("|---|---:|---:|---:|---:|---|")
    total_cpu2 = total_gpu = 0.0
    largest: dict[str, float] = defaultdict(float)
    missing = []
    sam_points = target_cfg["segmenters"]["sam"]["points_per_side"]
    shards_t = target_cfg["shards"]["count"]
    use = target_cfg["segmenters"]["use"]
    expanded = []
    for rule, n in jobs.items():
        if base_rule(rule) == "segment":  # one job (or shards_t) per segmenter
            expanded += [(f"{rule}:{name}", n // len(use)) for name in use]
        else:
            expanded.append((rule, n))
    for rule, n in expanded:
        base = base_rule(rule)
        key = rule.replace(SHARD_SUFFIX, "")
        if rule.endswith("_merge") or base == "all":
            continue
        if base in NOT_COMPARABLE or (key not in per_unit and not (key == "segment:sam" and "sam" in use)):
            missing.append(rule)
            continue
        per_job = units(base, t) / (shards_t if SHARD_SUFFIX in rule else 1)
        job_cpu = overhead + per_unit.get(key, float("nan")) * per_job * pixels_scale(base, t)
        cpu2 = n * job_cpu / 2
        if base == "train":
            sel = t["n_train"] * len(target_cfg["sel"]["qualities"]) / (SEL_PER_CORE_512 * GPU_NODE_CORES) \
                * t["pixels"] / 512 ** 2
            gpu_job = units(base, t) / GPU_TRAIN_256 * (t["crop"] / 256) ** 2 + sel
            basis = "H200 anchor: 10,262 crops/s at 256 px + SELs once on 16 cores (381/s per core at 512 px)"
        elif base in ("detect", "cams"):
            sel = per_job * len(target_cfg["sel"]["qualities"]) / (SEL_PER_CORE_512 * GPU_NODE_CORES) \
                * t["pixels"] / 512 ** 2
            gpu_job = per_job / GPU_INFER_512 * t["pixels"] / 512 ** 2 + sel
            basis = "H200 anchor: inference 5,726/s at 512 px + SELs on 16 cores"
        elif key == "segment:sam":
            gpu_job = per_job * SAM_GPU_16PTS * (sam_points / 16) ** 2
            basis = (f"H200 anchor: MobileSAM {SAM_GPU_16PTS:.3f} s/image at 16x16 points, scaled to "
                     f"{sam_points}x{sam_points}")
        else:
            gpu_job = job_cpu / GPU_NODE_CORES
            basis = "measured CPU cost / 16 cores"
        gpu = n * gpu_job
        total_cpu2 += 0.0 if cpu2 != cpu2 else cpu2  # nan: not measured
        total_gpu += gpu
        largest[base] = max(largest[base], gpu_job)  # segment: the slowest segmenter's job
        print(f"| {rule} | {n} | {job_cpu:.0f} | {fmt_s(cpu2)} | {fmt_s(gpu)} | {basis} |".replace("| nan |", "| - |"))
    if "sam" in use:
        measured_points = cfg["segmenters"]["sam"]["points_per_side"]
        note = ("not measured on the CPU (the measured study has no sam): the 2-core total leaves it out"
                if "segment:sam" not in per_unit else
                f"measured at {measured_points}x{measured_points} points, the target uses {sam_points}x{sam_points}: "
                "its CPU projection is a lower bound")
        print(f"\nsegment:sam on the CPU: {note}.")
    print("\n**Projected wall time** (lower bounds: perfect packing of the jobs on the cores):\n")
    print(f"- 2 CPU cores (this machine): {fmt_s(total_cpu2)}")
    print(f"- one GPU node (1 H200 + 16 cores): {fmt_s(total_gpu)}")
    critical = sum(largest.get(r, 0.0) for r in ("train", "cams", "segment", "fuse", "refine", "score"))
    for nodes in args.nodes:
        print(f"- {nodes} GPU nodes: {fmt_s(max(total_gpu / nodes, critical))} "
              f"(the larger of the work / {nodes} and the longest chain of jobs, {fmt_s(critical)}; "
              "shards make the per-image jobs of that chain shorter)")
    if missing:
        print(f"\nNot projected (not measured, or measured on a different kind of work): {', '.join(sorted(missing))}.")


if __name__ == "__main__":
    main()
