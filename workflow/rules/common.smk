# Configuration, validated against workflow/schemas/config.schema.yaml, and the target lists.
# The rules call the `weakloc` command: run Snakemake from the project's environment
# (`make reproduce`, or `source .venv/bin/activate` first).
#
# Every tree the study writes is a study root (weakloc.layout.parse_root): the dataset, its
# SEL-ablation models (<d>/sel-Q1-Q2), its self-trained students (<d>/st<r>) and the
# cross-dataset evaluation sets (<d>/cross/<id>). Each rule is written once over {root}; the
# layout tells a root's prepared data, checkpoints, segment cache and score variants.
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
MODEL_ROOTS = [f"{DATASET}/{name}" for name in SEL_ABLATION + STUDENTS]  # trained beside the dataset's own
RESULTS = layout.results_root(DATASET)
FIRST = layout.run_dir(RESULTS, SEEDS[0])  # the seed whose maps the example figure shows
FIGURES = f"{RESULTS}/figures"
DOWNLOADED = {"casia2", "casia1", "columbia", "coverage"}  # datasets with a download step
# Protocol (protocol.smk): peer rules on the main fusion, evaluation sets, robustness levels.
PEER_SEGMENTER = {r: peer_segmenter(r, config["peer_rules"][r], SEGMENTERS) for r in PEER_RULES}
PEER_VARIANTS = [layout.peer_variant(MAIN_FUSION, r) for r in PEER_RULES]
CROSS = {e["id"]: e["dataset"] for e in config["cross_dataset"]["datasets"]}
EVALSETS = [layout.cross_name(DATASET, e) for e in CROSS]  # the evaluation sets' roots
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
# weakloc.layout.wildcard_patterns.
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


def prepared(w):
    """The prepared data a job of the root ``w.root`` reads."""
    return layout.prepared_dir(layout.parse_root(w.root).data)


def model_checkpoint(w):
    """The checkpoint that makes the maps of the root ``w.root``, seed ``w.seed``."""
    return layout.parse_root(w.root).checkpoint(w.seed)


def root_config(root, *names):
    """The config sections a step of ``root`` reads, as JSON; SEL ablation roots override sel.qualities."""
    cfg = {name: config[name] for name in names}
    qualities = layout.parse_root(root).qualities
    if qualities is not None and "sel" in cfg:
        cfg["sel"] = dict(cfg["sel"], qualities=list(qualities))
    return sections(cfg, *names)


def segment_dir(root, segmenter):
    """The segment cache of one segmenter for ``root``: its settings are part of the path."""
    key = settings_key(segmenter, config["segmenters"][segmenter])
    return layout.parse_root(root).segments(segmenter, key)


def segsets_members(segset):
    return SEGMENTERS if segset == "all" else [segset]


def final_targets():
    return [
        layout.tables_dir(DATASET),
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
    return layout.variant_maps(layout.results_root(w.root), w.seed, w.variant, layout.parse_root(w.root).kinds)


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
    return layout.checkpoint_file(root, w.seed)


def study_files(root, variants):
    """The score files of ``variants`` for every seed, the detection files and the baselines' scores under ``root``."""
    files = [layout.score_file(root, s, v) for s in SEEDS for v in variants]
    files += [layout.detect_file(root, s) for s in SEEDS]
    files += [layout.baseline_score_file(root, b) for b in BASELINES]
    return files


def root_scores(root):
    """The score files the tables of a data root read: the study's, or an evaluation set's rows."""
    if root != DATASET:
        return study_files(layout.results_root(root), CROSS_VARIANTS)
    students = [layout.detect_file(f"{RESULTS}/{st}", s) for st in STUDENTS for s in SEEDS]
    return study_files(RESULTS, score_variants()) + students


def figure_output(name):
    return report(f"{FIGURES}/{name}.png", caption=f"../report/figure_{name}.rst", category="Figures")


# ---- the comparison protocol (protocol.smk): evaluation sets, robustness levels, their files

PROTOCOL = f"{RESULTS}/protocol"
CROSS_VARIANTS = [variant for variant, _ in protocol_variants(config)]  # exactly the rows protocol-tables reads


def protocol_columns():
    """(name, score files) of each column of the cross_dataset table: the training set's, then each evaluation set's."""
    own = study_files(RESULTS, CROSS_VARIANTS)  # a subset of the study tables' inputs
    return [(DATASET, own)] + [(e, root_scores(root)) for e, root in zip(CROSS, EVALSETS)]


def robustness_files():
    files = [layout.robustness_file(DATASET, level, f"seed{s}") for level in ROBUST_LEVELS for s in SEEDS]
    return files + [layout.robustness_file(DATASET, level, "baselines") for level in ROBUST_LEVELS if BASELINES]


def protocol_targets():
    return [
        PROTOCOL,
        *[layout.tables_dir(root) for root in EVALSETS],
        *([f"{FIGURES}/robustness.png"] if len(ROBUST_LEVELS) > 1 else []),
    ]


def level_data(w):
    return layout.prepared_dir(DATASET) if w.level == "none" else layout.perturbed_dir(DATASET, w.level)


# Shards of the per-image steps (shards.smk, docs/cluster.md).
SHARD_COUNT = config["shards"]["count"]
SHARDED = set(config["shards"]["steps"]) if SHARD_COUNT > 1 else set()
SHARD_NAMES = [layout.shard_name(i, SHARD_COUNT) for i in range(1, SHARD_COUNT + 1)]


def shard_option(w):
    """``--shard I/N`` for a shard job."""
    index, count = layout.parse_shard_name(w.shard)
    return f"--shard {index}/{count}"


def shard_folder(step):
    """A per-image step's folder results/{root}/<path> -> its shard's results/{root}/shards/<path>/{shard}."""
    return os.path.join(str(step.output[0]).replace("results/{root}/", "results/{root}/shards/", 1), "{shard}")


def shard_file(path, name="{shard}"):
    """A step's log or benchmark <stem>.<suffix> -> a shard's (or the merge's) <stem>/<name>.<suffix>."""
    stem, suffix = os.path.splitext(str(path))
    return os.path.join(stem, name + suffix)


def shard_folders(step):
    """Input function of a step's merge job: its N shard folders, in shard order."""
    return lambda w: [shard_folder(step).format(shard=s, **dict(w.items())) for s in SHARD_NAMES]
