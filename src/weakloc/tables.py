"""The study's tables, rebuilt from the score files of every seed (``weakloc tables``).

Inputs: exactly the files the ``tables`` rule declares, recognised by their paths under a
dataset's results folder ``results/{d}`` (see docs/architecture.md); nothing is globbed:

- ``seed{s}/scores/<variant>.json``: summaries written by ``weakloc score``. Variant names
  (:mod:`weakloc.layout`): ``block{b}``, ``fused-{fusion}``, ``refined-{fusion}-{segset}``,
  ``refined-{fusion}-{segset}-prior{strength}``, ``sel-{q1}-{q2}...-fused-{fusion}``,
  ``peer-{fusion}-{rule}``.
- ``seed{s}/detect/metrics.json``: :func:`weakloc.metrics.image_metrics` output.
- ``baselines/scores/baseline-{name}.json``: classic detectors (seed-independent).

Every table is written as ``<name>.csv`` (data: ``<metric>_mean``, ``<metric>_std``,
``<metric>_lo``, ``<metric>_hi``, ``n_seeds``), ``<name>.md`` and ``<name>.tex`` (booktabs), and
all of them together in ``README.md``; headline numbers go to ``summary.json`` (for ``dvc
metrics``). With several seeds a cell is the mean ± the sample standard deviation (ddof = 1)
over seeds; the bracketed ``[low, high]`` after it is the bootstrap interval over the test
images that the score files carry (:mod:`weakloc.intervals`; each bound averaged over seeds).

A variant must be given for every seed given, otherwise the tables would average different
sets of runs: a missing file is an error that names it.

The optional ``literature`` table holds only numbers quoted from papers, each with its
source, read from a CSV the user supplies (``method,dataset,metric,value,source``); this
module contains no published number of its own.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, write_text_atomic
from weakloc.layout import (
    baseline_variant,
    fused_variant,
    is_sel_folder,
    parse_result_file,
    parse_st_folder,
    parse_variant,
    peer_variant,
    refined_variant,
    st_variant,
)
from weakloc.peer_rules import PEER_LABELS, PEER_RULES

LOC_COLUMNS = [("f1", "F1"), ("iou", "IoU"), ("auc", "AUC"), ("mcc", "MCC"), ("best_f1", "best-F1 (oracle)")]
DET_COLUMNS = [("auc", "AUC"), ("accuracy", "Accuracy"), ("f1", "F1")]
SCORE_KEYS = ("f1", "iou", "mcc", "auc", "best_f1", "n_images", "dataset_level")
DET_KEYS = ("auc", "accuracy", "f1")
SEGMENTER_LABELS = {"slic": "SLIC", "felzenszwalb": "Felzenszwalb", "sam": "SAM", "deeplab": "DeepLabV3",
                    "pspnet": "PSPNet", "all": "all segmenters"}
ORACLE_NOTE = "best-F1 (oracle) uses the threshold that maximises F1 on each image's own mask: not attainable."


# --------------------------------------------------------------------------------------
# Reading the results tree
# --------------------------------------------------------------------------------------

@dataclass
class StudyResults:
    """Everything the tables read. ``scores[variant][seed]``, ``detection[seed]`` and
    ``student_detection[round][seed]`` (a self-trained student's) are the JSON objects."""

    root: Path
    seeds: list[int]
    name: str = ""
    scores: dict[str, dict[int, dict]] = field(default_factory=dict)
    detection: dict[int, dict] = field(default_factory=dict)
    baselines: dict[str, dict] = field(default_factory=dict)
    student_detection: dict[int, dict[int, dict]] = field(default_factory=dict)


def _read_json(path: Path, required: tuple[str, ...]) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeaklocError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise WeaklocError(f"{path}: expected a JSON object")
    missing = [k for k in required if k not in data]
    if missing:
        raise WeaklocError(f"{path}: lacks key(s) {', '.join(missing)}")
    return data


def read_results(files: list[str | Path], name: str | None = None) -> StudyResults:
    """Read exactly the score and detection ``files`` given (what the ``tables`` rule declares).

    Each file is recognised by its path: ``.../seed{s}/scores/<variant>.json``,
    ``.../seed{s}/detect/metrics.json`` or ``.../baselines/scores/baseline-<name>.json``; the
    seeds are the ones these paths name. Nothing else on disk is read, so a seed, variant or
    baseline left over from an earlier configuration never reaches the tables. ``name`` titles
    the tables (default: the folder above ``seed{s}``).

    Raises :class:`WeaklocError` when no file is given, a file is missing, malformed or of an
    unknown kind, or when a variant or detection file is given for some seeds but not all.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise WeaklocError("tables: no score files given (expected seed<s>/scores/<variant>.json, "
                           "seed<s>/detect/metrics.json or baselines/scores/baseline-<name>.json)")
    scores: dict[str, dict[int, Path]] = {}
    detection: dict[int, Path] = {}
    baselines: dict[str, Path] = {}
    students: dict[int, dict[int, Path]] = {}
    for path in paths:
        if not path.is_file():
            raise WeaklocError(f"{path}: score file not found (run the workflow first)")
        kind, m = parse_result_file(path.as_posix()) or (None, {})
        model_folder = path.parents[2].name if len(path.parents) > 2 else ""
        if kind == "detect" and parse_st_folder(model_folder) is not None:
            students.setdefault(parse_st_folder(model_folder), {})[int(m["seed"])] = path
        elif kind == "detect" and not is_sel_folder(model_folder):  # an SEL-ablation model's: not read
            detection[int(m["seed"])] = path
        elif kind == "score" and parse_variant(m["variant"]) is not None:
            scores.setdefault(m["variant"], {})[int(m["seed"])] = path
        elif kind == "baseline":
            baselines[m["name"]] = path
        else:
            raise WeaklocError(f"{path}: not a score file the tables know (expected seed<s>/scores/<variant>.json, "
                               "seed<s>/detect/metrics.json or baselines/scores/baseline-<name>.json)")
    seeds = sorted({s for by_seed in scores.values() for s in by_seed} | set(detection))
    seed_paths = [p for by_seed in scores.values() for p in by_seed.values()] + list(detection.values())
    root = seed_paths[0].parents[2] if seed_paths else paths[0].parents[2]
    res = StudyResults(root, seeds, name=name or root.name)
    for variant, by_seed in scores.items():
        for seed in seeds:
            if seed not in by_seed:
                raise WeaklocError(f"{variant}.json: given for seed(s) {', '.join(map(str, sorted(by_seed)))} but "
                                   f"not for seed {seed} (score every seed or drop the variant)")
        res.scores[variant] = {s: _read_json(by_seed[s], SCORE_KEYS) for s in seeds}
    if detection:
        for seed in seeds:
            if seed not in detection:
                raise WeaklocError(f"detect/metrics.json: given for seed(s) {', '.join(map(str, sorted(detection)))} "
                                   f"but not for seed {seed}")
        res.detection = {s: _read_json(detection[s], DET_KEYS) for s in seeds}
    for rnd, by_seed in sorted(students.items()):
        if sorted(by_seed) != seeds:
            raise WeaklocError(f"st{rnd}/seed<s>/detect/metrics.json: given for seed(s) "
                               f"{', '.join(map(str, sorted(by_seed)))}, the study's are {', '.join(map(str, seeds))}")
        res.student_detection[rnd] = {s: _read_json(by_seed[s], DET_KEYS) for s in seeds}
    res.baselines = {b: _read_json(baselines[b], SCORE_KEYS) for b in sorted(baselines)}
    return res


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """Mean and sample std (None with one value) of a metric over seeds; ``n`` values used.

    ``interval``: the bootstrap interval over test images (:mod:`weakloc.intervals`), each bound
    the mean of the seeds' bounds; None when a seed's result file has none.
    """

    mean: float | None
    std: float | None
    n: int
    interval: tuple[float, float] | None = None

    @classmethod
    def of(cls, values, intervals=None) -> Cell:
        """The cell of ``values`` (one per seed; None/NaN skipped) and their ``intervals`` (one per seed)."""
        vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not vals:
            return cls(None, None, 0)
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        ivs = list(intervals) if intervals is not None else []
        interval = None
        if ivs and all(iv is not None for iv in ivs):
            interval = (float(np.mean([iv[0] for iv in ivs])), float(np.mean([iv[1] for iv in ivs])))
        return cls(float(np.mean(vals)), std, len(vals), interval)

    def text(self, digits: int = 3) -> str:
        if self.mean is None:
            return ""
        s = f"{self.mean:.{digits}f}"
        if self.std is not None:
            s = f"{s} ± {self.std:.{digits}f}"
        if self.interval is not None:
            s = f"{s} [{self.interval[0]:.{digits}f}, {self.interval[1]:.{digits}f}]"
        return s


@dataclass
class Table:
    """One table: ``columns`` are ``(key, label)``; each row is ``(label, {key: Cell})``."""

    name: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, dict[str, Cell]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """CSV form: ``row``, then ``<key>_mean``, ``<key>_std`` per column (and ``<key>_lo``,
        ``<key>_hi``, the interval's bounds, where a cell of the column has one), then ``n_seeds``."""
        with_iv = {k for k, _ in self.columns if any(cells.get(k) and cells[k].interval for _, cells in self.rows)}
        stats = {k: ("mean", "std", "lo", "hi") if k in with_iv else ("mean", "std") for k, _ in self.columns}
        recs = []
        for label, cells in self.rows:
            rec = {"row": label}
            for key, _ in self.columns:
                c = cells.get(key, Cell(None, None, 0))
                rec[f"{key}_mean"] = c.mean
                rec[f"{key}_std"] = c.std
                if key in with_iv:
                    rec[f"{key}_lo"], rec[f"{key}_hi"] = c.interval if c.interval else (None, None)
            rec["n_seeds"] = max((c.n for c in cells.values()), default=0)
            recs.append(rec)
        cols = ["row", *[f"{k}_{s}" for k, _ in self.columns for s in stats[k]], "n_seeds"]
        return pd.DataFrame(recs, columns=cols)

    def text_frame(self, missing: str = "") -> pd.DataFrame:
        """Display form: the row label (column ``""``), then one column of cell text per table column."""
        rows = [[label, *((cells[k].text() if k in cells else "") or missing for k, _ in self.columns)]
                for label, cells in self.rows]
        return pd.DataFrame(rows, columns=["", *(lbl for _, lbl in self.columns)], dtype=object)

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        text = self.text_frame().map(esc).rename(columns=esc)
        table = text.to_markdown(index=False, colalign=["left", *["right"] * len(self.columns)], disable_numparse=True)
        return "\n\n".join([f"### {self.title}", table, *(f"*{esc(n)}*" for n in self.notes)]) + "\n"

    def to_latex(self) -> str:
        text = self.text_frame(missing="--").map(latex_escape).rename(columns=latex_escape)
        tex = text.style.hide(axis="index").to_latex(
            column_format="l" + "r" * len(self.columns), hrules=True, position="t", position_float="centering",
            caption=latex_escape(self.title), label=f"tab:{self.name.replace('_', '-')}")
        notes = f"\\par\\smallskip\\footnotesize {' '.join(map(latex_escape, self.notes))}\n" if self.notes else ""
        return ("% generated by `weakloc tables`; needs \\usepackage{booktabs}\n"
                + tex.replace("\\end{table}", notes + "\\end{table}"))


#: LaTeX's special characters in plain text, and the symbols set in math mode.
LATEX_ESCAPES = str.maketrans({
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "≥": r"$\geq$", "×": r"$\times$",
    ">": r"$>$", "<": r"$<$"})


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (± becomes ``$\\pm$``)."""
    return str(text).translate(LATEX_ESCAPES)


def _ordered(names, preferred) -> list[str]:
    """``names`` in ``preferred``'s order first, the rest sorted after."""
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def _ordered_segsets(names, config: dict) -> list[str]:
    """Segmenter sets in ``segmenters.use`` order, the others sorted, ``all`` last."""
    rest = _ordered(set(names) - {"all"}, config["segmenters"]["use"])
    return rest + (["all"] if "all" in set(names) else [])


def _seg_label(segset: str) -> str:
    return SEGMENTER_LABELS.get(segset, segset)


def _cells(by_seed: dict[int, dict], keys, level: str = "image") -> dict[str, Cell]:
    """Cells over seeds (with their intervals); ``level="dataset"`` reads the ``dataset_level`` sub-object."""
    def part(d):
        return d["dataset_level"] if level == "dataset" else d

    return {k: Cell.of([part(d).get(k) for d in by_seed.values()], seed_intervals(by_seed, k, level)) for k in keys}


def seed_intervals(by_seed: dict[int, dict], key: str, level: str = "image") -> list:
    """Each seed's interval of ``key`` (None where its file has none)."""
    return [((d["dataset_level"] if level == "dataset" else d).get("interval") or {}).get(key)
            for d in by_seed.values()]


def interval_note(by_seed: dict[int, dict]) -> str:
    """What the bracketed intervals are, from a result file's ``bootstrap`` record ("" when it has none)."""
    boot = next((d["bootstrap"] for d in by_seed.values() if d.get("bootstrap")), None)
    if boot is None:
        return ""
    seeds = "; with several seeds each bound is the mean of the seeds' bounds" if len(by_seed) > 1 else ""
    return (f" [low, high]: {boot['level']:.0%} percentile-bootstrap interval over the test images "
            f"({boot['resamples']} resamples){seeds}.")


def _protocol_note(res: StudyResults, level: str) -> str:
    any_score = (next(iter(next(iter(res.scores.values())).values())) if res.scores
                 else next(iter(res.baselines.values())))
    thr = any_score.get("threshold", 0.5)
    n = any_score.get("n_images")
    how = ("per manipulated image, then averaged" if level == "image"
           else "dataset level: all pixels of the manipulated images pooled")
    seeds = f"mean ± std over {len(res.seeds)} seeds" if len(res.seeds) > 1 else f"{len(res.seeds)} seed"
    by_seed = next(iter(res.scores.values())) if res.scores else {0: next(iter(res.baselines.values()))}
    return f"Pixel metrics at prob > {thr:g}, {how}; {n} test images with a mask; {seeds}." + interval_note(by_seed)


def _missing_note(by_variant: dict[str, dict[int, dict]]) -> list[str]:
    notes = []
    miss = {v: sum(d.get("n_missing", 0) for d in s.values()) for v, s in by_variant.items()}
    miss = {v: n for v, n in miss.items() if n}
    if miss:
        notes.append("Missing maps scored as all zero: " + ", ".join(f"{v} ({n})" for v, n in miss.items()) + ".")
    excl = {v: sum(d.get("auc_excluded", 0) for d in s.values()) for v, s in by_variant.items()}
    excl = {v: n for v, n in excl.items() if n}
    if excl:
        notes.append("Images without a defined AUC (constant map), left out of the AUC mean: "
                     + ", ".join(f"{v} ({n})" for v, n in excl.items()) + ".")
    return notes


def _variants(res: StudyResults, kind: str) -> dict[str, dict]:
    out = {}
    for v in res.scores:
        parsed = parse_variant(v)
        if parsed and parsed[0] == kind:
            out[v] = parsed[1]
    return out


def localization_table(res: StudyResults, config: dict, level: str = "image") -> Table | None:
    """Block maps, each fusion, and the primary fusion refined with each segmenter set."""
    fusions_pref = config["fusion"]["methods"]
    blocks = sorted(_variants(res, "block").items(), key=lambda kv: int(kv[1]["block"]))
    fused = _variants(res, "fused")
    refined = _variants(res, "refined")
    if not (blocks or fused or refined):
        return None
    name = "localization" if level == "image" else "localization_dataset_level"
    title = "Localization on the test split" + ("" if level == "image" else " (dataset level)")
    t = Table(name, title, LOC_COLUMNS)
    used = {}
    for v, f in blocks:
        t.rows.append((f"WCBnet block {f['block']} map", _cells(res.scores[v], [k for k, _ in LOC_COLUMNS], level)))
        used[v] = res.scores[v]
    for fusion in _ordered({f["fusion"] for f in fused.values()}, fusions_pref):
        v = fused_variant(fusion)
        t.rows.append((f"Fused ({fusion})", _cells(res.scores[v], [k for k, _ in LOC_COLUMNS], level)))
        used[v] = res.scores[v]
    refined_fusions = _ordered({f["fusion"] for f in refined.values()}, fusions_pref)
    if refined_fusions:
        primary = refined_fusions[0]
        segsets = _ordered_segsets({f["segset"] for f in refined.values() if f["fusion"] == primary}, config)
        for seg in segsets:
            v = refined_variant(primary, seg)
            t.rows.append((f"Fused ({primary}) + {_seg_label(seg)}",
                           _cells(res.scores[v], [k for k, _ in LOC_COLUMNS], level)))
            used[v] = res.scores[v]
        if len(refined_fusions) > 1:
            t.notes.append(f"Refined rows use the {primary} fusion; every fusion x segmenter pair is in "
                           f"the fusion x segmenter ablation.")
    peers = _variants(res, "peer")
    peer_fusions = _ordered({f["fusion"] for f in peers.values()}, fusions_pref)
    for fusion in peer_fusions[:1]:
        for rule in PEER_RULES:
            v = peer_variant(fusion, rule)
            if v in res.scores:
                t.rows.append((PEER_LABELS[rule], _cells(res.scores[v], [k for k, _ in LOC_COLUMNS], level)))
                used[v] = res.scores[v]
        t.notes.append(f"EdgeCAM-style and SEPL-style: the peers' region-selection rules [ours, reconstructed] on "
                       f"the same fused ({fusion}) maps and cached segments as the Bayesian refinement "
                       f"(peer_rules, docs/evaluation.md).")
    t.notes.insert(0, _protocol_note(res, level))
    t.notes.append(ORACLE_NOTE)
    t.notes += _missing_note(used)
    return t


def main_refined_variant(res: StudyResults, config: dict | None) -> str | None:
    """The default pipeline's score variant: the primary fusion refined with every segmenter (or the one)."""
    refined = _variants(res, "refined")
    pref = config["fusion"]["methods"] if config else []
    fusions = _ordered({f["fusion"] for f in refined.values()}, pref)
    if not fusions:
        return None
    segsets = {f["segset"] for f in refined.values() if f["fusion"] == fusions[0]}
    seg = "all" if "all" in segsets else _ordered(segsets, config["segmenters"]["use"] if config else [])[0]
    return refined_variant(fusions[0], seg)


def detection_table(res: StudyResults, config: dict | None = None) -> Table | None:
    """Image-level AUC, accuracy and F1 of WCBnet; with the default pipeline's pixel F1, the combined F1."""
    from weakloc.metrics import combined_f1

    if not res.detection:
        return None
    main = main_refined_variant(res, config)
    cols = list(DET_COLUMNS)
    cells = _cells(res.detection, [k for k, _ in DET_COLUMNS])
    image_f1 = {s: d.get("image_f1") for s, d in res.detection.items()}
    if any(v is not None for v in image_f1.values()):
        cols.append(("image_f1", "image F1 (sens./spec.)"))
        cells["image_f1"] = Cell.of(image_f1.values(), seed_intervals(res.detection, "image_f1"))
    if main is not None:
        cols += [("pixel_f1", "pixel F1 (default pipeline)"), ("combined_f1", "combined F1")]
        pix = {s: d.get("f1") for s, d in res.scores[main].items()}
        cells["pixel_f1"] = Cell.of(pix.values(), seed_intervals(res.scores[main], "f1"))
        cells["combined_f1"] = Cell.of(combined_f1(pix.get(s), image_f1.get(s)) for s in res.seeds)
    t = Table("detection", "Detection (image level) on the test split", cols)
    t.rows.append(("WCBnet", cells))
    if main is not None:
        t.notes.append(f"F1: the class manipulated; image F1: the protocol's (MVSS-Net, WSCL) harmonic mean of "
                       f"sensitivity and specificity; combined F1 = harmonic mean of that image F1 and the pixel F1 of "
                       f"{main} (per manipulated image at the fixed threshold), per seed.")
    any_det = next(iter(res.detection.values()))
    t.notes.append(f"{any_det.get('n_images', '?')} test images ({any_det.get('n_positive', '?')} manipulated); "
                   f"accuracy and F1 at score > {any_det.get('threshold', 0.5):g}"
                   + (f"; mean ± std over {len(res.seeds)} seeds." if len(res.seeds) > 1 else ".")
                   + interval_note(res.detection) + (" The combined F1 has none." if main is not None else ""))
    timed = [s for s, d in sorted(res.detection.items()) if d.get("training_stop") == "time_budget"]
    if timed:
        t.notes.append(f"Seed(s) {', '.join(map(str, timed))} stopped training on the wall-clock budget "
                       "(train.time_budget_minutes): their epoch count, and so these numbers, depend on the "
                       "machine's speed and load; a rerun may differ.")
    return t


def fusion_segmenter_table(res: StudyResults, config: dict) -> Table | None:
    """F1 of every fusion (rows) alone and refined with every segmenter set (columns)."""
    fused = _variants(res, "fused")
    refined = _variants(res, "refined")
    if not refined:
        return None
    fusions = _ordered({f["fusion"] for f in (*fused.values(), *refined.values())}, config["fusion"]["methods"])
    segsets = _ordered_segsets({f["segset"] for f in refined.values()}, config)
    cols = [("none", "no refinement"), *((s, f"+ {_seg_label(s)}") for s in segsets)]
    t = Table("ablation_fusion_segmenter", "Ablation: fusion x segmenter (pixel F1)", cols)
    for fusion in fusions:
        cells = {}
        if fused_variant(fusion) in res.scores:
            cells["none"] = _cells(res.scores[fused_variant(fusion)], ["f1"])["f1"]
        for s in segsets:
            v = refined_variant(fusion, s)
            if v in res.scores:
                cells[s] = _cells(res.scores[v], ["f1"])["f1"]
        t.rows.append((fusion, cells))
    t.notes.append(_protocol_note(res, "image"))
    return t


def sel_table(res: StudyResults, config: dict) -> Table | None:
    """SEL quality sets: the main model's fused map against each ablation model's."""
    sel = _variants(res, "sel")
    if not sel:
        return None
    fusions = _ordered({f["fusion"] for f in sel.values()}, config["fusion"]["methods"])
    t = Table("ablation_sel", "Ablation: JPEG qualities of the signed error level", LOC_COLUMNS)
    main_q = ", ".join(str(q) for q in config["sel"]["qualities"])
    keys = [k for k, _ in LOC_COLUMNS]
    for fusion in fusions:
        suffix = f", fused ({fusion})" if len(fusions) > 1 else ""
        if fused_variant(fusion) in res.scores:
            t.rows.append((f"q = {main_q} (main model){suffix}", _cells(res.scores[fused_variant(fusion)], keys)))
        items = sorted((v for v, f in sel.items() if f["fusion"] == fusion),
                       key=lambda v: [int(q) for q in sel[v]["qualities"].split("-")])
        for v in items:
            qs = sel[v]["qualities"].replace("-", ", ")
            t.rows.append((f"q = {qs}{suffix}", _cells(res.scores[v], keys)))
    t.notes.append(_protocol_note(res, "image") + (f" Fusion: {fusions[0]}." if len(fusions) == 1 else ""))
    t.notes.append(ORACLE_NOTE)
    return t


def selftrain_table(res: StudyResults, config: dict) -> Table | None:
    """Self-training: the teacher's fused and refined maps against each round's student's (and image AUC)."""
    students = {**_variants(res, "st_fused"), **_variants(res, "st_refined")}
    if not students:
        return None
    cols = [*LOC_COLUMNS, ("image_auc", "image AUC")]
    keys = [k for k, _ in LOC_COLUMNS]
    t = Table("ablation_selftrain", "Ablation: self-training (round 0 = the trained WCBnet)", cols)
    rounds = sorted({int(f["round"]) for f in students.values()})
    inner = sorted({v.split("-", 1)[1] for v in students}, key=lambda v: (not v.startswith("fused"), v))
    for rnd in [0, *rounds]:
        detection = res.detection if rnd == 0 else res.student_detection.get(rnd, {})
        for variant in inner:
            v = variant if rnd == 0 else st_variant(rnd, variant)
            if v not in res.scores:
                continue
            cells = _cells(res.scores[v], keys)
            cells["image_auc"] = Cell.of([d.get("auc") for d in detection.values()], seed_intervals(detection, "auc"))
            kind, f = parse_variant(variant)
            what = f"fused ({f['fusion']})" + (f" + {_seg_label(f['segset'])}" if kind == "refined" else "")
            t.rows.append((f"round {rnd}: {what}", cells))
    st = config["selftrain"]
    t.notes.append(_protocol_note(res, "image"))
    t.notes.append(f"Round r fine-tunes round r-1's model end to end on pseudo-masks of the train split from its own "
                   f"pipeline ({st['segmenter']} regions, the refine section's decision rule); {st['epochs']} "
                   f"epoch(s) per round at {st['lr_scale']:g} x train.lr, pixel weight {st['pixel_weight']:g} "
                   "(weakloc.selftrain, docs/selftrain.md). No mask is read in training.")
    t.notes.append(ORACLE_NOTE)
    return t


def prior_table(res: StudyResults, config: dict) -> Table | None:
    """Beta prior strength s (a = b = s) of the refinement."""
    prior = _variants(res, "prior")
    if not prior:
        return None
    pref = config["fusion"]["methods"]
    combos = sorted({(f["fusion"], f["segset"]) for f in prior.values()},
                    key=lambda c: (pref.index(c[0]) if c[0] in pref else len(pref), c))
    t = Table("ablation_prior", "Ablation: strength of the Beta prior (a = b = s)", LOC_COLUMNS)
    keys = [k for k, _ in LOC_COLUMNS]
    for fusion, seg in combos:
        items = sorted((v for v, f in prior.items() if (f["fusion"], f["segset"]) == (fusion, seg)),
                       key=lambda v: float(prior[v]["strength"]))
        suffix = f", fused ({fusion}) + {_seg_label(seg)}" if len(combos) > 1 else ""
        for v in items:
            t.rows.append((f"s = {prior[v]['strength']}{suffix}", _cells(res.scores[v], keys)))
    if len(combos) == 1:
        fusion, seg = combos[0]
        t.notes.append(f"Refinement of the {fusion} fusion with {_seg_label(seg)}.")
    t.notes.append(_protocol_note(res, "image"))
    t.notes.append(ORACLE_NOTE)
    return t


def baselines_table(res: StudyResults, level: str = "image") -> Table | None:
    """Classic detectors: fixed threshold after their normalisation, AUC, and oracle F1."""
    if not res.baselines:
        return None
    name = "baselines" if level == "image" else "baselines_dataset_level"
    cols = [("f1", "F1"), ("iou", "IoU"), ("mcc", "MCC"), ("auc", "AUC"), ("best_f1", "best-F1 (oracle)")]
    title = "Classic forensic baselines" + ("" if level == "image" else " (dataset level)")
    t = Table(name, title, cols)
    for b in sorted(res.baselines):
        t.rows.append((b.upper(), _cells({0: res.baselines[b]}, [k for k, _ in cols], level)))
    thr = next(iter(res.baselines.values())).get("threshold", 0.5)
    t.notes.append(f"F1, IoU, MCC at the fixed threshold {thr:g} after each detector's normalisation to [0, 1]; "
                   f"{'per image, then averaged' if level == 'image' else 'all pixels pooled'}; "
                   f"baselines do not depend on the training seed."
                   + interval_note({0: next(iter(res.baselines.values()))}))
    t.notes.append("best-F1 (oracle): each detector at its best threshold per image, chosen with the mask.")
    t.notes += _missing_note({baseline_variant(b): {0: d} for b, d in res.baselines.items()})
    return t


def read_csv_file(path: str | Path, columns, what: str, empty: str = "has no rows", **read_csv) -> pd.DataFrame:
    """A CSV with (at least) ``columns`` and one row or more; ``read_csv``: options of :func:`pandas.read_csv`.

    Raises :class:`WeaklocError` naming the file and ``what`` it is when it is missing,
    unreadable, lacks a column, or has no row (the message then ends with ``empty``).
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, **read_csv)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: {what} not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise WeaklocError(f"{path}: unreadable {what} ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise WeaklocError(f"{path}: {what} lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise WeaklocError(f"{path}: {what} {empty}")
    return df


def read_literature(path: str | Path, columns) -> pd.DataFrame:
    """A CSV of numbers quoted from papers, every cell a string (empty cells ``""``), with ``columns``."""
    return read_csv_file(path, columns, "literature file", dtype=str, keep_default_na=False)


#: Columns of the ``--literature`` CSV of ``weakloc tables``.
LITERATURE_TABLE_COLUMNS = ["method", "dataset", "metric", "value", "source"]


def literature_table(path: str | Path) -> Table:
    """Numbers quoted from papers (CSV ``method,dataset,metric,value,source``), never run here."""
    path = Path(path)
    df = read_literature(path, LITERATURE_TABLE_COLUMNS)
    metrics = list(dict.fromkeys(df["metric"]))
    t = Table("literature", "Published numbers (quoted from the sources, not run here)",
              [*((m, m) for m in metrics)])
    sources = {}
    for (method, dataset), grp in df.groupby(["method", "dataset"], sort=False):
        cells = {}
        for _, r in grp.iterrows():
            if not r["source"].strip():
                raise WeaklocError(f"{path}: row {method}/{dataset}/{r['metric']} has no source")
            try:
                cells[r["metric"]] = Cell(float(r["value"]), None, 1)
            except ValueError:
                raise WeaklocError(f"{path}: value {r['value']!r} of {method}/{r['metric']} is not a number") from None
            sources.setdefault(r["source"], None)
        t.rows.append((f"{method} ({dataset})", cells))
    t.notes.append("Sources: " + "; ".join(sources) + ". Protocols may differ from ours.")
    return t


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def write_table(table: Table, out_dir: Path) -> None:
    """``<name>.csv``, ``<name>.md`` and ``<name>.tex`` in ``out_dir``, atomically."""
    with atomic_path(out_dir / f"{table.name}.csv") as tmp:
        table.to_frame().to_csv(tmp, index=False)
    write_text_atomic(out_dir / f"{table.name}.md", table.to_markdown())
    write_text_atomic(out_dir / f"{table.name}.tex", table.to_latex())


def summary_metrics(res: StudyResults, config: dict) -> dict:
    """Headline numbers for ``dvc metrics``: detection and the fused/refined maps, mean and std."""
    out: dict = {"n_seeds": len(res.seeds), "seeds": res.seeds}
    if res.detection:
        out["detection"] = {}
        for k, c in _cells(res.detection, DET_KEYS).items():
            out["detection"].update(_summary_entry(k, c))
    loc = {}
    for v in res.scores:
        parsed = parse_variant(v)
        if parsed and parsed[0] in ("fused", "refined", "st_fused", "st_refined"):
            loc[v] = {}
            for k, c in _cells(res.scores[v], [k for k, _ in LOC_COLUMNS]).items():
                loc[v].update(_summary_entry(k, c))
    if loc:
        out["localization"] = dict(sorted(loc.items()))
    if res.baselines:
        out["baselines"] = {}
        for b, d in sorted(res.baselines.items()):
            entries = {}
            for k, c in _cells({0: d}, [key for key, _ in LOC_COLUMNS]).items():
                entries.update({name: v for name, v in _summary_entry(k, c).items() if not name.endswith("_std")})
            out["baselines"][b] = entries
    return out


def _summary_entry(key: str, cell: Cell) -> dict:
    """``key``, ``key_std`` and ``key_interval`` ([low, high] or None) of a cell, for summary.json."""
    return {key: cell.mean, f"{key}_std": cell.std, f"{key}_interval": list(cell.interval) if cell.interval else None}


def build_tables(files: list[str | Path], out_dir: str | Path, config: dict | None = None,
                 literature: str | Path | None = None, name: str | None = None) -> list[str]:
    """Read exactly ``files`` (:func:`read_results`) and write every table they allow; return the table names.

    ``config`` (validated; defaults if None) orders the rows: fusions as ``fusion.methods``,
    segmenters as ``segmenters.use``, and labels the main model's SEL qualities.
    """
    config = validate_config(copy.deepcopy(config) if config is not None else {}, "config")
    res = read_results(files, name)
    tables = [localization_table(res, config, "image"), localization_table(res, config, "dataset"),
              detection_table(res, config), fusion_segmenter_table(res, config), sel_table(res, config),
              prior_table(res, config), selftrain_table(res, config), baselines_table(res, "image"),
              baselines_table(res, "dataset")]
    if literature is not None:
        tables.append(literature_table(literature))
    tables = [t for t in tables if t is not None]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for t in tables:
        write_table(t, out)
    readme = [f"# Tables: {res.name}", "",
              f"Generated by `weakloc tables` from {len(files)} score files of `{res.root}` "
              f"(seeds: {', '.join(map(str, res.seeds)) or 'none'}). "
              "Each table is also in this folder as CSV (data) and LaTeX.", ""]
    readme += [t.to_markdown() for t in tables]
    write_text_atomic(out / "README.md", "\n".join(readme))
    write_text_atomic(out / "summary.json", json.dumps(summary_metrics(res, config), indent=2) + "\n")
    return [t.name for t in tables]
