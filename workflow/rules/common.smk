# Configuration, validated against workflow/schemas/config.schema.yaml, and the target lists.
# The rules call the `weakloc` command: run Snakemake from the project's environment
# (`make reproduce`, or `source .venv/bin/activate` first).
import os
import re

from weakloc.config import sections, validate_config
from weakloc.segmenters import settings_key
from weakloc.segmenters.sam import DEFAULT_MOBILE_SAM
from weakloc.peer_rules import PEER_RULES, peer_segmenter
from weakloc.perturb import level_name

validate_config(config, source="config (config.yaml, --configfile or --config)")

DATASET = config["dataset"]["name"]
SEEDS = config["seeds"]
BLOCKS = list(range(1, len(config["model"]["widths"]) + 1))
FUSIONS = config["fusion"]["methods"]
SEGMENTERS = config["segmenters"]["use"]
SEGSETS = SEGMENTERS + (["all"] if len(SEGMENTERS) > 1 else [])
MAIN_FUSION = FUSIONS[0]
MAIN_SEGSET = SEGSETS[-1]
PRIOR_STRENGTHS = config["evaluate"]["prior_strengths"]
SEL_ABLATION = ["sel-" + "-".join(str(q) for q in qs) for qs in config["evaluate"]["sel_ablation"]]
BASELINES = config["evaluate"]["baselines"]
FIRST = f"results/{DATASET}/seed{SEEDS[0]}"  # the seed whose maps the example figure shows
FIGURES = f"results/{DATASET}/figures"
DOWNLOADED = {"casia2", "casia1", "columbia", "coverage"}  # datasets with a download step
# Protocol (protocol.smk): peer rules on the main fusion, evaluation sets, robustness levels.
PEER_SEGMENTER = {r: peer_segmenter(r, config["peer_rules"][r], SEGMENTERS) for r in PEER_RULES}
PEER_VARIANTS = [f"peer-{MAIN_FUSION}-{r}" for r in PEER_RULES]
CROSS = {e["id"]: e["dataset"] for e in config["cross_dataset"]["datasets"]}
ROBUST_LEVELS = ["none"] + [level_name(kind, v) for kind in ("jpeg", "blur", "noise", "resize")
                            for v in config["robustness"][kind]]


def dataset_section(d):
    """The dataset section that prepares data/prepared/<d>: an evaluation set's, else the training set's."""
    return CROSS.get(d, config["dataset"])


for _id, _ds in CROSS.items():
    if _ds["name"] in DOWNLOADED and _id != _ds["name"]:
        raise ValueError(f"config: key cross_dataset.datasets: id {_id!r} of a downloaded set must be its "
                         f"name {_ds['name']!r} (data/raw/<name> is where it is downloaded)")


wildcard_constraints:
    dataset=r"[a-z0-9]+",
    seed=r"\d+",
    # a study root: the dataset, or dataset/sel-Q1-Q2 for a model of the SEL ablation
    root=r"[a-z0-9]+(/sel-[0-9-]+)?",
    fusion=r"attention|mean|max|wavelet",
    segmenter=r"slic|felzenszwalb|sam|deeplab|pspnet",
    segset=r"slic|felzenszwalb|sam|deeplab|pspnet|all",
    refine=r"default|prior[0-9.]+",
    block=r"\d+",
    baseline=r"ela|noi1|blk|dct",


def root_dataset(root):
    """The dataset of a study root (``synthetic`` or ``synthetic/sel-75-90``)."""
    return root.split("/")[0]


def root_config(root, *names):
    """The config sections a step of ``root`` reads, as JSON; SEL ablation roots override sel.qualities."""
    cfg = {name: config[name] for name in names}
    ablation = re.fullmatch(r"[a-z0-9]+.sel-([0-9-]+)", root)
    if ablation and "sel" in cfg:
        cfg["sel"] = dict(cfg["sel"], qualities=[int(q) for q in ablation[1].split("-")])
    return sections(cfg, *names)


def segment_dir(segmenter):
    """The cache folder of one segmenter: its settings are part of the path."""
    key = settings_key(segmenter, config["segmenters"][segmenter])
    return f"results/{DATASET}/segments/{segmenter}/{key}"


def segsets_members(segset):
    return SEGMENTERS if segset == "all" else [segset]


def final_targets():
    root = f"results/{DATASET}"
    return [
        f"{root}/tables",
        *[f"{FIGURES}/{name}.png" for name in ("examples", "segmenters", "thresholds", "training")],
        # the SEL-ablation models' own detection (the tables read their maps' scores only)
        *[f"{root}/{sel}/seed{s}/detect/metrics.json" for s in SEEDS for sel in SEL_ABLATION],
        *protocol_targets(),  # protocol.smk: cross-dataset and protocol tables, robustness figure
    ]


def segmenter_weights(w):
    sam = config["segmenters"]["sam"]
    if w.segmenter == "sam" and sam["checkpoint"] is None and sam["model_type"] == "vit_t":
        return rules.fetch_mobile_sam.output
    return []


def refine_config(w):
    """The refine section; a prior-strength variant sets a = b = strength."""
    cfg = dict(config["refine"])
    if w.refine.startswith("prior"):
        strength = float(w.refine[len("prior"):])
        cfg.update(prior_a=strength, prior_b=strength)
    return sections({"refine": cfg}, "refine")


def variant_maps(w):
    """(input folder, folder of maps to score) for a variant name of results/<root>/seed<s>/scores/."""
    base = f"results/{w.root}/seed{w.seed}"
    if m := re.fullmatch(r"block(\d+)", w.variant):
        return f"{base}/cams", f"{base}/cams/block{m[1]}"
    if m := re.fullmatch(r"fused-(\w+)", w.variant):
        folder = f"{base}/fused/{m[1]}"
    elif m := re.fullmatch(r"refined-(\w+)-(\w+)-(prior[0-9.]+)", w.variant):
        folder = f"{base}/refined/{m[1]}/{m[2]}/{m[3]}"
    elif m := re.fullmatch(r"refined-(\w+)-(\w+)", w.variant):
        folder = f"{base}/refined/{m[1]}/{m[2]}/default"
    elif m := re.fullmatch(r"peer-(\w+)-(edgecam|sepl)", w.variant):
        folder = f"{base}/peer/{m[1]}/{m[2]}"
    elif m := re.fullmatch(r"(sel-[0-9-]+)-fused-(\w+)", w.variant):
        folder = f"results/{w.root}/{m[1]}/seed{w.seed}/fused/{m[2]}"
    else:
        raise ValueError(f"unknown score variant {w.variant!r}")
    return folder, folder


def score_variants():
    variants = [f"block{b}" for b in BLOCKS]
    variants += [f"fused-{f}" for f in FUSIONS]
    variants += [f"refined-{f}-{s}" for f in FUSIONS for s in SEGSETS]
    variants += [f"refined-{MAIN_FUSION}-{MAIN_SEGSET}-prior{p:g}" for p in PRIOR_STRENGTHS]
    variants += [f"{sel}-fused-{MAIN_FUSION}" for sel in SEL_ABLATION]
    variants += PEER_VARIANTS
    return variants


def all_scores():
    root = f"results/{DATASET}"
    files = [f"{root}/seed{s}/scores/{v}.json" for s in SEEDS for v in score_variants()]
    files += [f"{root}/seed{s}/detect/metrics.json" for s in SEEDS]
    files += [f"{root}/baselines/scores/baseline-{b}.json" for b in BASELINES]
    return files


def figure_output(name):
    return report(f"{FIGURES}/{name}.png", caption=f"../report/figure_{name}.rst", category="Figures")


# ---- the comparison protocol (protocol.smk): evaluation sets, robustness levels, their files

CROSS_ROOT = f"results/{DATASET}/cross/{{evalset}}"
PROTOCOL = f"results/{DATASET}/protocol"


def cross_segment_dir(segmenter, evalset):
    return segment_dir(segmenter).replace(f"results/{DATASET}/", f"results/{DATASET}/cross/{evalset}/", 1)


def cross_variant_maps(w):
    """(input folder, maps folder) of a variant of results/<d>/cross/<id>/seed<s>/scores/."""
    base = f"results/{DATASET}/cross/{w.evalset}/seed{w.seed}"
    if m := re.fullmatch(r"fused-(\w+)", w.variant):
        folder = f"{base}/fused/{m[1]}"
    elif m := re.fullmatch(r"refined-(\w+)-(\w+)", w.variant):
        folder = f"{base}/refined/{m[1]}/{m[2]}/default"
    elif m := re.fullmatch(r"peer-(\w+)-(edgecam|sepl)", w.variant):
        folder = f"{base}/peer/{m[1]}/{m[2]}"
    else:
        raise ValueError(f"unknown cross-dataset score variant {w.variant!r}")
    return folder, folder


CROSS_VARIANTS = [f"fused-{MAIN_FUSION}", f"refined-{MAIN_FUSION}-{MAIN_SEGSET}", *PEER_VARIANTS]


def cross_scores(evalset):
    root = f"results/{DATASET}/cross/{evalset}"
    files = [f"{root}/seed{s}/scores/{v}.json" for s in SEEDS for v in CROSS_VARIANTS]
    files += [f"{root}/seed{s}/detect/metrics.json" for s in SEEDS]
    files += [f"{root}/baselines/scores/baseline-{b}.json" for b in BASELINES]
    return files


def own_protocol_scores():
    """The training set's own files the cross_dataset table reads (a subset of the tables' inputs)."""
    root = f"results/{DATASET}"
    files = [f"{root}/seed{s}/scores/{v}.json" for s in SEEDS for v in CROSS_VARIANTS]
    files += [f"{root}/seed{s}/detect/metrics.json" for s in SEEDS]
    files += [f"{root}/baselines/scores/baseline-{b}.json" for b in BASELINES]
    return files


def robustness_files():
    root = f"results/{DATASET}/robustness"
    files = [f"{root}/{lv}/seed{s}.json" for lv in ROBUST_LEVELS for s in SEEDS]
    files += [f"{root}/{lv}/baselines.json" for lv in ROBUST_LEVELS] if BASELINES else []
    return files


def protocol_targets():
    return [PROTOCOL, *[f"results/{DATASET}/cross/{e}/tables" for e in CROSS],
            *([f"{FIGURES}/robustness.png"] if len(ROBUST_LEVELS) > 1 else [])]


def level_data(w):
    return f"data/prepared/{DATASET}" if w.level == "none" else f"data/perturbed/{DATASET}/{w.level}"


# Shards of the per-image steps (shards.smk, docs/cluster.md).
SHARD_COUNT = config["shards"]["count"]
SHARDED = set(config["shards"]["steps"]) if SHARD_COUNT > 1 else set()
SHARD_NAMES = [f"{i}-of-{SHARD_COUNT}" for i in range(1, SHARD_COUNT + 1)]


def shard_option(w):
    """``--shard I/N`` for a shard job."""
    index, count = w.shard.split("-of-")
    return f"--shard {index}/{count}"


def shard_folders(pattern):
    """Input function of a merge job: the N shard folders, in shard order."""
    return lambda w: [pattern.format(shard=s, **dict(w.items())) for s in SHARD_NAMES]
