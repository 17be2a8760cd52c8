"""The field's comparison protocol: cross-dataset, robustness and quoted-literature tables.

``weakloc protocol-tables`` writes, into ``results/{d}/protocol/``:

- ``cross_dataset``: rows = methods (the main fusion, the default pipeline, the peer rules,
  the classic baselines), columns = datasets (the training set's own test split first, then
  every ``cross_dataset.datasets`` entry) x (pixel F1 at the fixed threshold, image F1,
  combined F1, pixel AUC). Pixel metrics are per manipulated image, then averaged; image F1
  is WCBnet's ``image_f1`` (harmonic mean of sensitivity and specificity, as MVSS-Net and
  WSCL define it; the same for every WCBnet row; baselines give no image score);
  combined F1 is their harmonic mean (:func:`weakloc.metrics.combined_f1`), computed per seed
  and then averaged.
- ``robustness``: pixel F1 at the fixed threshold per perturbation level (``none`` = the
  unperturbed images) for the default pipeline and the classic baselines.
- ``literature``: numbers quoted from papers (a CSV such as ``docs/literature/quoted.csv``),
  in its own block titled "Quoted from the literature (not run here)", each with its source
  and whether we could check it against that source.

Every input is an explicit file (what the rule declares); nothing is globbed.
"""

from __future__ import annotations

import json
from pathlib import Path

from weakloc.errors import WeaklocError
from weakloc.io import write_text_atomic
from weakloc.layout import fused_variant, parse_baseline_variant, peer_variant, refined_variant
from weakloc.metrics import combined_f1
from weakloc.peer_rules import PEER_LABELS, PEER_RULES
from weakloc.perturb import PERTURBATIONS
from weakloc.tables import (
    SEGMENTER_LABELS,
    Cell,
    StudyResults,
    Table,
    interval_note,
    read_literature,
    read_results,
    seed_intervals,
    write_table,
)

CROSS_METRICS = [("f1", "pixel F1"), ("image_f1", "image F1"), ("combined_f1", "combined F1"), ("auc", "pixel AUC")]
LITERATURE_COLUMNS = ["method", "supervision", "train_set", "test_set", "metric", "threshold", "value", "source",
                      "where_in_source", "checked"]
LEVEL_ORDER = ("none", *PERTURBATIONS)
LEVEL_LABELS = {"none": "none", "jpeg": "JPEG q", "blur": "blur k", "noise": "noise var", "resize": "resize x"}


def main_segset(config: dict) -> str:
    """The segmenter set of the main refined row: ``all`` with several segmenters, else the one."""
    use = config["segmenters"]["use"]
    return "all" if len(use) > 1 else use[0]


def protocol_variants(config: dict) -> list[tuple[str, str]]:
    """``(score variant, row label)`` of the WCBnet rows of the protocol tables."""
    fusion = config["fusion"]["methods"][0]
    seg = main_segset(config)
    return [(fused_variant(fusion), f"Fused ({fusion})"),
            (refined_variant(fusion, seg), f"Fused ({fusion}) + {SEGMENTER_LABELS.get(seg, seg)} (default pipeline)"),
            *((peer_variant(fusion, r), PEER_LABELS[r]) for r in PEER_RULES)]


def _per_seed(res: StudyResults, variant: str, key: str) -> dict[int, float | None]:
    return {s: d.get(key) for s, d in res.scores.get(variant, {}).items()}


def cross_dataset_table(columns: list[tuple[str, StudyResults]], config: dict) -> Table:
    """The ``cross_dataset`` table (module docstring) from each dataset's results."""
    if not columns:
        raise WeaklocError("protocol tables: no dataset given")
    cols = [(f"{name}:{k}", f"{name} {label}") for name, _ in columns for k, label in CROSS_METRICS]
    t = Table("cross_dataset", "Cross-dataset evaluation (trained on " + columns[0][0] + ")", cols)
    for variant, label in protocol_variants(config):
        cells = {}
        for name, res in columns:
            if variant not in res.scores:
                continue
            pix = _per_seed(res, variant, "f1")
            img = {s: d.get("image_f1") for s, d in res.detection.items()}
            cells[f"{name}:f1"] = Cell.of(pix.values(), seed_intervals(res.scores[variant], "f1"))
            cells[f"{name}:auc"] = Cell.of(_per_seed(res, variant, "auc").values(),
                                           seed_intervals(res.scores[variant], "auc"))
            if img:
                cells[f"{name}:image_f1"] = Cell.of(img.values(), seed_intervals(res.detection, "image_f1"))
                cells[f"{name}:combined_f1"] = Cell.of(combined_f1(pix.get(s), img.get(s)) for s in res.seeds)
        t.rows.append((label, cells))
    for b in sorted({b for _, res in columns for b in res.baselines}):
        cells = {}
        for name, res in columns:
            if b in res.baselines:
                one = {0: res.baselines[b]}
                for key in ("f1", "auc"):
                    cells[f"{name}:{key}"] = Cell.of([one[0].get(key)], seed_intervals(one, key))
        t.rows.append((b.upper(), cells))
    thr = config["evaluate"]["threshold"]
    sizes = ", ".join(f"{name} {next(iter(next(iter(res.scores.values())).values())).get('n_images', '?')}"
                      for name, res in columns if res.scores)
    t.notes.append(f"Pixel F1 at map > {thr:g} and pixel AUC per manipulated image with a mask, then averaged "
                   f"(images: {sizes}); image F1 = harmonic mean of WCBnet's sensitivity and specificity at score > "
                   f"{thr:g} over all test images (the MVSS-Net / WSCL image F1; baselines give no image score); "
                   f"combined F1 = harmonic mean of pixel and image F1, per seed.")
    seeds = columns[0][1].seeds
    if len(seeds) > 1:
        t.notes.append(f"Mean ± std over {len(seeds)} seeds.")
    first = columns[0][1]
    note = interval_note(first.detection or next(iter(first.scores.values()), {}))
    if note:
        t.notes.append(note.strip() + " Combined F1 has none.")
    t.notes.append(f"The first column is the training set's own test split ({columns[0][0]}); the others were never "
                   "seen in training.")
    return t


def read_level_files(files: list[str | Path]) -> list[dict]:
    """Robustness JSONs (:func:`weakloc.robustness.score_level`), each with its ``seed`` (None for baselines)."""
    out = []
    for f in files:
        path = Path(f)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WeaklocError(f"{path}: robustness file not found (run the workflow first)") from None
        except json.JSONDecodeError as exc:
            raise WeaklocError(f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or "level" not in data or "methods" not in data:
            raise WeaklocError(f"{path}: not a robustness file (needs level and methods)")
        out.append(data)
    return out


def _level_key(level: dict):
    kind = level["kind"]
    return (LEVEL_ORDER.index(kind) if kind in LEVEL_ORDER else len(LEVEL_ORDER), level["value"] or 0)


def robustness_table(levels: list[dict], config: dict) -> Table:
    """Pixel F1 per level (columns) and method (rows); the pipeline's JSONs are one per seed."""
    if not levels:
        raise WeaklocError("protocol tables: no robustness file given")
    by_level: dict[str, dict] = {}
    for lv in sorted(levels, key=_level_key):
        by_level.setdefault(lv["level"], {"kind": lv["kind"], "value": lv["value"], "methods": {}})
        for method, summary in lv["methods"].items():
            by_level[lv["level"]]["methods"].setdefault(method, []).append(summary)
    cols = [(name, "none" if v["kind"] == "none" else f"{LEVEL_LABELS.get(v['kind'], v['kind'])} {v['value']:g}")
            for name, v in by_level.items()]
    t = Table("robustness", "Robustness: pixel F1 under perturbations of the test images", cols)
    methods = sorted({m for v in by_level.values() for m in v["methods"]}, key=lambda m: (m != "pipeline", m))
    fusion = config["fusion"]["methods"][0]
    segs = " + ".join(SEGMENTER_LABELS.get(s, s) for s in config["robustness"]["segmenters"])
    for m in methods:
        label = (f"Fused ({fusion}) + {segs}, {config['refine']['decision']['rule']} decision" if m == "pipeline"
                 else (parse_baseline_variant(m) or m).upper())
        t.rows.append((label, {name: Cell.of([d.get("f1") for d in v["methods"][m]],
                                             seed_intervals(dict(enumerate(v["methods"][m])), "f1"))
                               for name, v in by_level.items() if m in v["methods"]}))
    n = {lv.get("n_images") for lv in levels}
    t.notes.append(f"Pixel F1 at map > {config['evaluate']['threshold']:g}, per image then averaged, on the "
                   f"{'/'.join(str(x) for x in sorted(n))} manipulated test images with a mask; JPEG = re-compressed "
                   "at quality q, blur = Gaussian kernel k x k, noise = Gaussian of variance var (0-255 scale), "
                   "resize = scaled by x with the mask resized alike (IMDL-BenCo's protocol; docs/evaluation.md).")
    note = interval_note({0: next(iter(levels[0]["methods"].values()))})
    if note:
        t.notes.append(note.strip())
    return t


def quoted_table(path: str | Path) -> Table:
    """Published numbers from a CSV with :data:`LITERATURE_COLUMNS`; rows = methods, columns = test sets."""
    path = Path(path)
    df = read_literature(path, LITERATURE_COLUMNS)
    tests = list(dict.fromkeys(df["test_set"]))
    t = Table("literature", "Quoted from the literature (not run here)", [(s, s) for s in tests])
    unchecked = False
    notes_by_source: dict[str, set] = {}
    for i, r in df.iterrows():
        if not r["source"].strip():
            raise WeaklocError(f"{path}: line {i + 2} ({r['method']}, {r['test_set']}) has no source")
        if r["checked"] not in ("yes", "no"):
            raise WeaklocError(f"{path}: line {i + 2}: checked must be yes or no, got {r['checked']!r}")
        try:
            float(r["value"])
        except ValueError:
            raise WeaklocError(f"{path}: line {i + 2}: value {r['value']!r} is not a number") from None
        notes_by_source.setdefault(f"{r['source']} ({r['where_in_source']})", set()).add(
            f"{r['metric']} at {r['threshold']}, trained on {r['train_set']}")
    for (method, sup), grp in df.groupby(["method", "supervision"], sort=False):
        cells = {}
        for _, r in grp.iterrows():
            cells[r["test_set"]] = Cell(float(r["value"]), None, 1)
        flag = "" if (grp["checked"] == "yes").all() else " †"
        unchecked |= bool(flag)
        t.rows.append((f"{method} [{sup}]{flag}", cells))
    for src, what in notes_by_source.items():
        t.notes.append(f"{'; '.join(sorted(what))}: {src}.")
    if unchecked:
        t.notes.append("† not checked against the source here (the source's text was not readable from this "
                       "project's environment): quoted as the issue that asked for it states them.")
    t.notes.append("Quoted, not run here; protocols, splits and masks may differ from ours.")
    return t


def build_protocol_tables(columns: list[tuple[str, list[str]]], out_dir: str | Path, config: dict,
                          robustness: list[str] | None = None, literature: str | Path | None = None) -> list[str]:
    """Write the protocol tables into ``out_dir``; ``columns`` = ``(dataset name, its score files)``."""
    results = [(name, read_results(files, name)) for name, files in columns]
    tables = [cross_dataset_table(results, config)]
    if robustness:
        tables.append(robustness_table(read_level_files(robustness), config))
    if literature:
        tables.append(quoted_table(literature))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for t in tables:
        write_table(t, out)
    readme = [f"# Protocol tables: trained on {columns[0][0]}", "",
              "Generated by `weakloc protocol-tables`. Each table is also in this folder as CSV (data) and LaTeX.", ""]
    readme += [t.to_markdown() for t in tables]
    write_text_atomic(out / "README.md", "\n".join(readme))
    return [t.name for t in tables]
