# Configuration, validated against workflow/schemas/config.schema.yaml, and the target lists.
# The rules call the `weakloc` command: run Snakemake from the project's environment
# (`make reproduce`, or `source .venv/bin/activate` first).
import os

from weakloc import layout
from weakloc.baselines import BASELINES as BASELINE_METHODS
from weakloc.config import PIPELINE_SECTIONS, sections, validate_config
from weakloc.fusion import FUSION_METHODS
from weakloc.segmenters import CACHED_SEGMENTERS, settings_key
from weakloc.segmenters.sam import DEFAULT_MOBILE_SAM
from weakloc.peer_rules import PEER_RULES, peer_segmenter
from weakloc.perturb import PERTURBATIONS, level_name
from weakloc.protocol import main_segset, protocol_variants

validate_config(config, source="config (config.yaml, --configfile or --config)")

DATASET = config["dataset"]["name"]
SEEDS = config["seeds"]
BLOCKS = list(range(1, len(config["model"]["widths"]) + 1))
FUSIONS = config["fusion"]["methods"]
SEGMENTERS = config["segmenters"]["use"]
SEGSETS = SEGMENTERS + (["all"] if len(SEGMENTERS) > 1 else [])
MAIN_FUSION = FUSIONS[0]
MAIN_SEGSET = main_segset(config)  # "all" with several segmenters, else the one (the protocol tables' row)
PRIOR_STRENGTHS = config["evaluate"]["prior_strengths"]
SEL_QUALITIES = config["evaluate"]["sel_ablation"]
SEL_ABLATION = [layout.sel_name(qs) for qs in SEL_QUALITIES]
BASELINES = config["evaluate"]["baselines"]
ROUNDS = list(range(1, config["selftrain"]["rounds"] + 1))  # self-training (selftrain.smk)
STUDENTS = [layout.st_name(r) for r in ROUNDS]
RESULTS = layout.results_root(DATASET)
FIRST = layout.run_dir(RESULTS, SEEDS[0])  # the seed whose maps the example figure shows
FIGURES = f"{RESULTS}/figures"
DOWNLOADED = {"casia2", "casia1", "columbia", "coverage"}  # datasets with a download step
# Protocol (protocol.smk): peer rules on the main fusion, evaluation sets, robustness levels.
PEER_SEGMENTER = {r: peer_segmenter(r, config["peer_rules"][r], SEGMENTERS) for r in PEER_RULES}
PEER_VARIANTS = [layout.peer_variant(MAIN_FUSION, r) for r in PEER_RULES]
CROSS = {e["id"]: e["dataset"] for e in config["cross_dataset"]["datasets"]}
ROBUST_LEVELS = ["none"] + [level_name(kind, v) for kind in PERTURBATIONS for v in config["robustness"][kind]]


def dataset_section(d):
    """The dataset section that prepares data/prepared/<d>: an evaluation set's, else the training set's."""
    return CROSS.get(d, config["dataset"])


for _id, _ds in CROSS.items():
    if _ds["name"] in DOWNLOADED and _id != _ds["name"]:
        raise ValueError(
            f"config: key cross_dataset.datasets: id {_id!r} of a downloaded set must be its "
            f"name {_ds['name']!r} (data/raw/<name> is where it is downloaded)"
        )


# Name lists from the registries (fusion methods, cached segmenters, baselines, perturbations) through
# weakloc.layout.wildcard_patterns. A study root is the dataset, dataset/sel-Q1-Q2 for a model of
# the SEL ablation, or dataset/st<r> for the round-r self-trained student.
WILDCARDS = layout.wildcard_patterns(FUSION_METHODS, CACHED_SEGMENTERS, BASELINE_METHODS, PERTURBATIONS)


wildcard_constraints:
    dataset=WILDCARDS["dataset"],
    seed=WILDCARDS["seed"],
    root=WILDCARDS["root"],
    fusion=WILDCARDS["fusion"],
    segmenter=WILDCARDS["segmenter"],
    segset=WILDCARDS["segset"],
    refine=WILDCARDS["refine"],
    block=WILDCARDS["block"],
    baseline=WILDCARDS["baseline"],
    round=WILDCARDS["round"],


def root_dataset(root):
    """The dataset of a study root (``synthetic``, ``synthetic/sel-75-90`` or ``synthetic/st1``)."""
    return layout.parse_root(root)[0]


def root_config(root, *names):
    """The config sections a step of ``root`` reads, as JSON; SEL ablation roots override sel.qualities."""
    cfg = {name: config[name] for name in names}
    qualities = layout.parse_root(root)[1]
    if qualities is not None and "sel" in cfg:
        cfg["sel"] = dict(cfg["sel"], qualities=qualities)
    return sections(cfg, *names)


def segment_dir(segmenter):
    """The cache folder of one segmenter: its settings are part of the path."""
    key = settings_key(segmenter, config["segmenters"][segmenter])
    return f"{RESULTS}/segments/{segmenter}/{key}"


def segsets_members(segset):
    return SEGMENTERS if segset == "all" else [segset]


def final_targets():
    return [
        f"{RESULTS}/tables",
        *[f"{FIGURES}/{name}.png" for name in ("examples", "segmenters", "thresholds", "training")],
        # the SEL-ablation models' own detection (the tables read their maps' scores only)
        *[layout.detect_file(f"{RESULTS}/{sel}", s) for s in SEEDS for sel in SEL_ABLATION],
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
    strength = layout.refine_strength(w.refine)
    if strength is not None:
        cfg.update(prior_a=strength, prior_b=strength)
    return sections({"refine": cfg}, "refine")


def variant_maps(w):
    """(input folder, folder of maps to score) for a variant name of results/<root>/seed<s>/scores/."""
    return layout.variant_maps(layout.results_root(w.root), w.seed, w.variant)


# The students' rows: the main fusion, alone and refined as the default pipeline refines it.
STUDENT_VARIANTS = [layout.fused_variant(MAIN_FUSION), layout.refined_variant(MAIN_FUSION, MAIN_SEGSET)]


def score_variants():
    variants = [layout.block_variant(b) for b in BLOCKS]
    variants += [layout.fused_variant(f) for f in FUSIONS]
    variants += [layout.refined_variant(f, s) for f in FUSIONS for s in SEGSETS]
    variants += [layout.refined_variant(MAIN_FUSION, MAIN_SEGSET, p) for p in PRIOR_STRENGTHS]
    variants += [layout.sel_variant(qs, MAIN_FUSION) for qs in SEL_QUALITIES]
    variants += PEER_VARIANTS
    variants += [layout.st_variant(r, v) for r in ROUNDS for v in STUDENT_VARIANTS]
    return variants


def teacher_checkpoint(w):
    """Round r's teacher: the trained WCBnet for round 1, else round r-1's student."""
    r = int(w["round"])
    root = w.dataset if r == 1 else f"{w.dataset}/{layout.st_name(r - 1)}"
    return f"checkpoints/{root}/seed{w.seed}/wcbnet.pt"


def study_files(root, variants):
    """The score files of ``variants`` for every seed, the detection files and the baselines' scores under ``root``."""
    files = [layout.score_file(root, s, v) for s in SEEDS for v in variants]
    files += [layout.detect_file(root, s) for s in SEEDS]
    files += [layout.baseline_score_file(root, b) for b in BASELINES]
    return files


def all_scores():
    students = [layout.detect_file(f"{RESULTS}/{st}", s) for st in STUDENTS for s in SEEDS]
    return study_files(RESULTS, score_variants()) + students


def figure_output(name):
    return report(f"{FIGURES}/{name}.png", caption=f"../report/figure_{name}.rst", category="Figures")


# ---- the comparison protocol (protocol.smk): evaluation sets, robustness levels, their files

CROSS_ROOT = layout.cross_root(DATASET, "{evalset}")
PROTOCOL = f"{RESULTS}/protocol"


def cross_segment_dir(segmenter, evalset):
    return segment_dir(segmenter).replace(f"{RESULTS}/", f"{layout.cross_root(DATASET, evalset)}/", 1)


def cross_variant_maps(w):
    """(input folder, maps folder) of a variant of results/<d>/cross/<id>/seed<s>/scores/."""
    return layout.variant_maps(layout.cross_root(DATASET, w.evalset), w.seed, w.variant, layout.CROSS_KINDS)


CROSS_VARIANTS = [variant for variant, _ in protocol_variants(config)]  # exactly the rows protocol-tables reads


def cross_scores(evalset):
    return study_files(layout.cross_root(DATASET, evalset), CROSS_VARIANTS)


def own_protocol_scores():
    """The training set's own files the cross_dataset table reads (a subset of the tables' inputs)."""
    return study_files(RESULTS, CROSS_VARIANTS)


def robustness_files():
    root = f"{RESULTS}/robustness"
    files = [f"{root}/{lv}/seed{s}.json" for lv in ROBUST_LEVELS for s in SEEDS]
    files += [f"{root}/{lv}/baselines.json" for lv in ROBUST_LEVELS] if BASELINES else []
    return files


def protocol_targets():
    return [
        PROTOCOL,
        *[f"{layout.cross_root(DATASET, e)}/tables" for e in CROSS],
        *([f"{FIGURES}/robustness.png"] if len(ROBUST_LEVELS) > 1 else []),
    ]


def level_data(w):
    return f"data/prepared/{DATASET}" if w.level == "none" else f"data/perturbed/{DATASET}/{w.level}"


# Shards of the per-image steps (shards.smk, docs/cluster.md).
SHARD_COUNT = config["shards"]["count"]
SHARDED = set(config["shards"]["steps"]) if SHARD_COUNT > 1 else set()
SHARD_NAMES = [layout.shard_name(i, SHARD_COUNT) for i in range(1, SHARD_COUNT + 1)]


def shard_option(w):
    """``--shard I/N`` for a shard job."""
    index, count = layout.parse_shard_name(w.shard)
    return f"--shard {index}/{count}"


def shard_folders(pattern):
    """Input function of a merge job: the N shard folders, in shard order."""
    return lambda w: [pattern.format(shard=s, **dict(w.items())) for s in SHARD_NAMES]
