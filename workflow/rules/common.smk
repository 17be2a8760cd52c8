# Configuration, validated against workflow/schemas/config.schema.yaml, and the target lists.
import os
import sys

from weakloc.config import sections, validate_config
from weakloc.segmenters import settings_key

# The rules call the `weakloc` installed beside this Snakemake's interpreter.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]

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
    if "/sel-" in root and "sel" in cfg:
        qualities = [int(q) for q in root.split("/sel-")[1].split("-")]
        cfg["sel"] = dict(cfg["sel"], qualities=qualities)
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
        *[f"{root}/figures/{name}.png" for name in ("examples", "segmenters", "thresholds", "training")],
    ]
