"""Variant names and result paths: the one module that builds them and parses them back.

The workflow (``workflow/rules/*.smk``) writes every result under ``results/<root>/`` where a
*study root* is a dataset (``results/synthetic``), the dataset's SEL-ablation model
(``results/synthetic/sel-75-90``), its round-r self-trained student (``results/synthetic/st1``,
:mod:`weakloc.selftrain`) or a cross-dataset evaluation set (``results/synthetic/cross/casia1``);
:func:`parse_root` tells any root's prepared data, checkpoints, segment cache and score kinds,
so each rule is written once over ``{root}``. The tables, figures and protocol tables read those
files back by their paths. This module is the grammar both sides share.

Score variants (the stem of ``<root>/seed{s}/scores/<variant>.json``), with the folder of maps
each one scores, under the run folder ``<root>/seed{s}``:

- ``block{b}``: ``cams/block{b}`` (the step's input folder: ``cams``);
- ``fused-{fusion}``: ``fused/{fusion}``;
- ``refined-{fusion}-{segset}``: ``refined/{fusion}/{segset}/default``;
- ``refined-{fusion}-{segset}-prior{p}``: ``refined/{fusion}/{segset}/prior{p}`` (Beta prior a = b = p);
- ``sel-{q1}-{q2}...-fused-{fusion}``: the SEL-ablation model's ``<root>/sel-{q1}-{q2}.../seed{s}/fused/{fusion}``;
- ``st{r}-fused-{fusion}``, ``st{r}-refined-{fusion}-{segset}``: the round-r student's
  ``<root>/st{r}/seed{s}/fused/{fusion}`` and ``.../refined/{fusion}/{segset}/default``;
- ``peer-{fusion}-{rule}``: ``peer/{fusion}/{rule}`` (``rule`` in :data:`PEER_RULES`).

The other files the readers recognise: ``<root>/seed{s}/detect/metrics.json`` (image-level
detection) and ``<root>/baselines/scores/baseline-{name}.json`` (a classic baseline, no seed).
The inputs: ``data/prepared/<name>`` (:func:`prepared_dir`), ``checkpoints/<root>/seed{s}/``
(:func:`checkpoint_file`), ``results/<data root>/segments/<segmenter>/<settings key>``
(:func:`segments_dir`). A shard of a per-image step is the folder ``{i}-of-{n}``.

:func:`wildcard_patterns` gives the Snakemake wildcard constraints from this grammar and the
name lists of the registries, which the caller passes in (``workflow/rules/common.smk``): this
module imports nothing of the project but :mod:`weakloc.errors`, so every other module may read
from it (``tests/test_layout.py`` checks that the package has no import cycle).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from weakloc.errors import WeaklocError

#: The peers' region rules (:mod:`weakloc.peer_rules` implements them under these names).
PEER_RULES = ("edgecam", "sepl")
#: A fusion or segmenter-set name inside a variant name.
NAME = r"[a-z0-9_]+"
#: A dataset (results/<dataset>) and a study root (the dataset, dataset/sel-Q1-Q2 or dataset/st<r>).
DATASET_PATTERN = r"[a-z0-9]+"
#: The roots of trained models (``weakloc train``); a student's root (``st{r}``) is written by ``weakloc self-train``.
TRAINED_ROOT_PATTERN = rf"{DATASET_PATTERN}(/sel-[0-9-]+)?"
CROSS_FOLDER = "cross"
#: The roots with data of their own (segment cache, baselines, tables): a dataset or an evaluation set.
DATA_ROOT_PATTERN = rf"{DATASET_PATTERN}(/{CROSS_FOLDER}/{DATASET_PATTERN})?"
ROOT_PATTERN = rf"{DATASET_PATTERN}(/sel-[0-9-]+|/st[1-9][0-9]*|/{CROSS_FOLDER}/{DATASET_PATTERN})?"
#: The refinement variant folder: the configured prior, or prior<strength> (a = b = strength).
REFINE_PATTERN = r"default|prior[0-9.]+"
SHARD_PATTERN = r"\d+-of-\d+"
SEL_PREFIX = "sel-"
ST_PREFIX = "st"

#: kind -> pattern of a score variant name; :func:`parse_variant` returns the named groups.
VARIANT_PATTERNS: dict[str, re.Pattern] = {
    "block": re.compile(r"block(?P<block>\d+)"),
    "fused": re.compile(rf"fused-(?P<fusion>{NAME})"),
    "prior": re.compile(rf"refined-(?P<fusion>{NAME})-(?P<segset>{NAME})-prior(?P<strength>[0-9][0-9.e+-]*)"),
    "refined": re.compile(rf"refined-(?P<fusion>{NAME})-(?P<segset>{NAME})"),
    "sel": re.compile(rf"sel-(?P<qualities>\d+(?:-\d+)*)-fused-(?P<fusion>{NAME})"),
    "peer": re.compile(rf"peer-(?P<fusion>{NAME})-(?P<rule>{'|'.join(PEER_RULES)})"),
    "st_fused": re.compile(rf"st(?P<round>[1-9][0-9]*)-fused-(?P<fusion>{NAME})"),
    "st_refined": re.compile(rf"st(?P<round>[1-9][0-9]*)-refined-(?P<fusion>{NAME})-(?P<segset>{NAME})"),
}
VARIANT_KINDS = tuple(VARIANT_PATTERNS)
#: The kinds a cross-dataset evaluation set scores (no blocks, prior or SEL ablation there).
CROSS_KINDS = ("fused", "refined", "peer")
#: kind -> maps folder under the run folder (block and sel: see :func:`variant_maps`).
_MAPS_FOLDERS = {"fused": "fused/{fusion}", "refined": "refined/{fusion}/{segset}/default",
                 "prior": "refined/{fusion}/{segset}/prior{strength}", "peer": "peer/{fusion}/{rule}"}
#: A student's kind -> the teacher's kind of the same maps (under the student's root).
_ST_KINDS = {"st_fused": "fused", "st_refined": "refined"}

_BASELINE_VARIANT = re.compile(r"baseline-(?P<name>[^/]+)")
_SCORE_FILE = re.compile(r"(?:^|.*/)seed(?P<seed>\d+)/scores/(?P<variant>[^/]+)\.json")
_DETECT_FILE = re.compile(r"(?:^|.*/)seed(?P<seed>\d+)/detect/metrics\.json")
_BASELINE_FILE = re.compile(r"(?:^|.*/)baselines/scores/baseline-(?P<name>[^/]+)\.json")
_ST_FOLDER = re.compile(r"st(?P<round>[1-9][0-9]*)")


# ----------------------------------------------------------------------------- variant names

def block_variant(block: int) -> str:
    """``block{b}``: the activation maps of WCBnet block ``b`` (1-based)."""
    return f"block{block}"


def fused_variant(fusion: str) -> str:
    return f"fused-{fusion}"


def refined_variant(fusion: str, segset: str, strength: float | None = None) -> str:
    """``refined-{fusion}-{segset}``, or with a prior strength ``...-prior{strength:g}``."""
    name = f"refined-{fusion}-{segset}"
    return name if strength is None else f"{name}-prior{strength:g}"


def sel_name(qualities: Sequence[int]) -> str:
    """``sel-{q1}-{q2}...``: the root folder (under the dataset's) of an SEL-ablation model."""
    return SEL_PREFIX + "-".join(str(q) for q in qualities)


def sel_variant(qualities: Sequence[int], fusion: str) -> str:
    """The fused map of the SEL-ablation model trained with JPEG ``qualities``."""
    return f"{sel_name(qualities)}-fused-{fusion}"


def st_name(round_: int) -> str:
    """``st{r}``: the root folder (under the dataset's) of the round-``r`` self-trained student."""
    return f"{ST_PREFIX}{int(round_)}"


def st_variant(round_: int, variant: str) -> str:
    """The round-``r`` student's ``variant`` (a :func:`fused_variant` or a default :func:`refined_variant`)."""
    kind = parse_variant(variant)
    if kind is None or kind[0] not in _ST_KINDS.values():
        raise WeaklocError(f"a student's variant is fused-... or refined-..., not {variant!r}")
    return f"{st_name(round_)}-{variant}"


def parse_st_folder(name: str) -> int | None:
    """The round of a student's root folder ``st{r}``; None for any other name."""
    m = _ST_FOLDER.fullmatch(name)
    return int(m["round"]) if m else None


def peer_variant(fusion: str, rule: str) -> str:
    return f"peer-{fusion}-{rule}"


def baseline_variant(name: str) -> str:
    """The score-file stem of a classic baseline (``baseline-ela``)."""
    return f"baseline-{name}"


def parse_variant(name: str) -> tuple[str, dict[str, str]] | None:
    """``(kind, fields)`` of a score variant, e.g. ``("refined", {"fusion": "mean", "segset": "slic"})``.

    ``kind`` is one of :data:`VARIANT_KINDS`; the fields are strings. None for a name that
    follows none of the patterns (baselines' stems included: :func:`parse_baseline_variant`).
    """
    for kind, pattern in VARIANT_PATTERNS.items():
        m = pattern.fullmatch(name)
        if m:
            return kind, m.groupdict()
    return None


def parse_baseline_variant(stem: str) -> str | None:
    """The baseline's name of a stem ``baseline-{name}``; None for any other stem."""
    m = _BASELINE_VARIANT.fullmatch(stem)
    return m["name"] if m else None


def is_sel_folder(name: str) -> bool:
    """Whether a folder name is an SEL-ablation root (``sel-...``)."""
    return name.startswith(SEL_PREFIX)


# ----------------------------------------------------------------------------- result paths

def results_root(root: str) -> str:
    """``results/{root}``: a study root's folder."""
    return f"results/{root}"


def cross_name(dataset: str, evalset: str) -> str:
    """``{dataset}/cross/{evalset}``: the study root of a cross-dataset evaluation set."""
    return f"{dataset}/{CROSS_FOLDER}/{evalset}"


def tables_dir(root: str) -> str:
    """``results/{root}/tables``: a data root's localization and detection tables."""
    return f"{results_root(root)}/tables"


def prepared_dir(name: str) -> str:
    """``data/prepared/{name}``: a prepared dataset (images/, masks/, manifest.csv)."""
    return f"data/prepared/{name}"


def checkpoint_file(root: str, seed: int | str) -> str:
    """``checkpoints/{root}/seed{seed}/wcbnet.pt``: a trained root's model."""
    return f"checkpoints/{root}/seed{seed}/wcbnet.pt"


def train_log_file(root: str, seed: int | str) -> str:
    """``checkpoints/{root}/seed{seed}/train_log.csv``: its training curve."""
    return f"checkpoints/{root}/seed{seed}/train_log.csv"


def perturbed_dir(dataset: str, level: str) -> str:
    """``data/perturbed/{dataset}/{level}``: the dataset's test forgeries under one perturbation level."""
    return f"data/perturbed/{dataset}/{level}"


def robustness_file(dataset: str, level: str, name: str) -> str:
    """``results/{dataset}/robustness/{level}/{name}.json``: ``seed{s}`` (the default pipeline) or ``baselines``."""
    return f"{results_root(dataset)}/robustness/{level}/{name}.json"


def segments_dir(root: str, segmenter: str, key: str) -> str:
    """``results/{root}/segments/{segmenter}/{key}``: a data root's partitions by one segmenter's settings."""
    return f"{results_root(root)}/segments/{segmenter}/{key}"


def run_dir(root: str, seed: int | str) -> str:
    """``{root}/seed{seed}``: one training seed's results."""
    return f"{root}/seed{seed}"


def score_file(root: str, seed: int | str, variant: str) -> str:
    return f"{run_dir(root, seed)}/scores/{variant}.json"


def detect_file(root: str, seed: int | str) -> str:
    return f"{run_dir(root, seed)}/detect/metrics.json"


def baseline_score_file(root: str, name: str) -> str:
    return f"{root}/baselines/scores/{baseline_variant(name)}.json"


def parse_result_file(path: str) -> tuple[str, dict[str, str]] | None:
    """``(kind, fields)`` of a result file's POSIX path, None for any other path.

    ``("detect", {"seed"})`` for ``.../seed{s}/detect/metrics.json``, ``("score", {"seed",
    "variant"})`` for ``.../seed{s}/scores/<variant>.json`` (the variant unchecked) and
    ``("baseline", {"name"})`` for ``.../baselines/scores/baseline-<name>.json``.
    """
    for kind, pattern in (("detect", _DETECT_FILE), ("score", _SCORE_FILE), ("baseline", _BASELINE_FILE)):
        m = pattern.fullmatch(path)
        if m:
            return kind, m.groupdict()
    return None


def variant_maps(root: str, seed: int | str, variant: str, kinds: Sequence[str] = VARIANT_KINDS) -> tuple[str, str]:
    """``(input folder, folder of maps to score)`` of a variant of ``{root}/seed{seed}/scores/``.

    ``root`` is a results folder (``results/synthetic``, ``results/synthetic/cross/casia1``).
    The two folders differ only for a block (the ``cams`` folder, and its ``block{b}``).
    Raises :class:`WeaklocError` for a name that is not a variant of one of ``kinds``.
    """
    parsed = parse_variant(variant)
    if parsed is None or parsed[0] not in kinds:
        raise WeaklocError(f"unknown score variant {variant!r} (kinds here: {', '.join(kinds)})")
    kind, fields = parsed
    base = run_dir(root, seed)
    if kind == "block":
        return f"{base}/cams", f"{base}/cams/{block_variant(fields['block'])}"
    if kind == "sel":
        sel_root = f"{root}/{SEL_PREFIX}{fields['qualities']}"  # the ablation model's own tree
        folder = f"{run_dir(sel_root, seed)}/fused/{fields['fusion']}"
    elif kind in _ST_KINDS:  # the student's own tree, its maps where the teacher's are in the teacher's
        st_root = f"{root}/{st_name(fields['round'])}"
        folder = f"{run_dir(st_root, seed)}/{_MAPS_FOLDERS[_ST_KINDS[kind]].format(**fields)}"
    else:
        folder = f"{base}/{_MAPS_FOLDERS[kind].format(**fields)}"
    return folder, folder


@dataclass(frozen=True)
class Root:
    """A study root and what its steps read: see :func:`parse_root`."""

    name: str  #: ``synthetic``, ``synthetic/sel-75-90``, ``synthetic/st1``, ``synthetic/cross/casia1``
    dataset: str  #: the training set whose checkpoints make its maps
    data: str  #: the prepared set of its images (:func:`prepared_dir`)
    data_root: str  #: the root of its segment cache and baselines: itself, or the dataset for a model root
    model: str  #: the root of its checkpoints (:func:`checkpoint_file`): itself, or the dataset for an evaluation set
    qualities: tuple[int, ...] | None  #: an SEL-ablation model's JPEG qualities
    kinds: tuple[str, ...]  #: the score-variant kinds scored under it

    def checkpoint(self, seed: int | str) -> str:
        return checkpoint_file(self.model, seed)

    def segments(self, segmenter: str, key: str) -> str:
        return segments_dir(self.data_root, segmenter, key)


def parse_root(root: str) -> Root:
    """The :class:`Root` of a study root: ``synthetic`` (the dataset), ``synthetic/sel-75-90`` (an
    SEL-ablation model), ``synthetic/st1`` (a self-trained student), ``synthetic/cross/casia1`` (the
    dataset's checkpoints scored on the evaluation set ``casia1``). Model roots share the
    dataset's data and segment cache; an evaluation set has its own and the dataset's checkpoints."""
    if not re.fullmatch(ROOT_PATTERN, root):
        raise WeaklocError(f"not a study root: {root!r} (<dataset>, <dataset>/sel-Q1-Q2, <dataset>/st<r> "
                           f"or <dataset>/{CROSS_FOLDER}/<id>)")
    dataset, *rest = root.split("/")
    if rest and rest[0] == CROSS_FOLDER:
        return Root(root, dataset, rest[1], root, dataset, None, CROSS_KINDS)
    qualities = tuple(int(q) for q in rest[0][len(SEL_PREFIX):].split("-")) if rest and is_sel_folder(rest[0]) else None
    return Root(root, dataset, dataset, dataset, root, qualities, VARIANT_KINDS)


def refine_strength(refine: str) -> float | None:
    """The prior strength of a refinement folder ``prior{p}``; None for ``default``."""
    return float(refine[len("prior"):]) if refine.startswith("prior") else None


def parse_seed_folder(name: str) -> int | None:
    """The seed of a folder ``seed{s}``; None for any other name."""
    m = re.fullmatch(r"seed(\d+)", name)
    return int(m[1]) if m else None


def parse_block_folder(name: str) -> int | None:
    """The block of a maps folder ``block{b}``; None for any other name."""
    m = re.fullmatch(r"block(\d+)", name)
    return int(m[1]) if m else None


def shard_name(index: int, count: int) -> str:
    """``{index}-of-{count}``: the folder of one shard (1-based ``index``)."""
    return f"{index}-of-{count}"


def parse_shard_name(name: str) -> tuple[int, int]:
    """``(index, count)`` of a shard folder ``{index}-of-{count}``."""
    m = re.fullmatch(r"(\d+)-of-(\d+)", name)
    if not m:
        raise WeaklocError(f"not a shard name: {name!r} (expected I-of-N)")
    return int(m[1]), int(m[2])


# ----------------------------------------------------------------------------- wildcard constraints

def _alternatives(names) -> str:
    return "|".join(names)


def wildcard_patterns(fusions: Sequence[str], segmenters: Sequence[str], baselines: Sequence[str],
                      perturbations: Sequence[str]) -> dict[str, str]:
    """The workflow's wildcard constraints: the registries' name lists given, the rest from this grammar.

    ``segmenters`` are those whose partitions are cached (not the map-prompted ones); a segmenter
    set is one of them or ``all``.
    """
    return {
        "dataset": DATASET_PATTERN,
        "seed": r"\d+",
        "root": ROOT_PATTERN,
        "data_root": DATA_ROOT_PATTERN,
        "trained_root": TRAINED_ROOT_PATTERN,
        "round": r"[1-9][0-9]*",
        "fusion": _alternatives(fusions),
        "segmenter": _alternatives(segmenters),
        "segset": _alternatives([*segmenters, "all"]),
        "refine": REFINE_PATTERN,
        "block": r"\d+",
        "baseline": _alternatives(baselines),
        "peer": _alternatives(PEER_RULES),
        "level": rf"none|({_alternatives(perturbations)})-[0-9.]+",
        "shard": SHARD_PATTERN,
    }
