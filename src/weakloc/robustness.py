"""Scoring one perturbation level of the robustness protocol (``weakloc robustness``).

Input: a perturbed dataset (:func:`weakloc.perturb.perturb_dataset`) or, for the level
``none``, the prepared dataset itself; only the manipulated images of the split that have a
mask are read. Each method's map is quantised to 8 bits exactly as the workflow's map files
are (:func:`weakloc.io.write_prob`), then scored with :func:`weakloc.metrics.summarize_localization`,
so the level ``none`` reproduces the scores of the same maps written to disk.

Methods:

- ``pipeline``: the pipeline of ``weakloc localize`` (:class:`weakloc.pipeline.Localizer`, maps in
  8 bits): the first of ``fusion.methods`` refined with ``robustness.segmenters`` (default SLIC);
- ``baseline-<name>``: a classic detector (:func:`weakloc.baselines.baseline_map`).

Output JSON: ``{"level", "kind", "value", "n_images", "methods": {method: summary}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from weakloc.errors import WeaklocError
from weakloc.intervals import BootstrapSettings, localization_intervals
from weakloc.io import read_mask, read_rgb, write_text_atomic
from weakloc.layout import baseline_variant
from weakloc.manifest import masked_rows
from weakloc.metrics import ScoreHistogram, summarize_localization
from weakloc.perturb import parse_level


def _quantised(prob: np.ndarray) -> np.ndarray:
    return (np.clip(np.rint(np.asarray(prob, np.float64) * 255.0), 0, 255) / 255.0).astype(np.float32)


def score_level(manifest: str | Path, level: str, config: dict, checkpoint: str | Path | None = None,
                baselines: list[str] | None = None, split: str = "test", progress: bool = True) -> dict:
    """Score ``pipeline`` (when ``checkpoint`` is given) and ``baselines`` on one level's images."""
    if level == "none":
        kind, value = "none", None
    else:
        kind, value = parse_level(level)
    rows = masked_rows(manifest, split)
    threshold = config["evaluate"]["threshold"]
    methods: dict[str, list[ScoreHistogram]] = {}
    localizer = None
    if checkpoint is not None:
        from weakloc.pipeline import Localizer
        from weakloc.runtime import resolve_device
        from weakloc.wcbnet import load_checkpoint

        model, meta = load_checkpoint(checkpoint, map_location=resolve_device("auto"))
        localizer = Localizer.from_model(model, meta, config, segmenters=config["robustness"]["segmenters"],
                                         checkpoint=checkpoint)
        methods["pipeline"] = []
    baselines = list(baselines or [])
    for b in baselines:
        methods[baseline_variant(b)] = []
    if not methods:
        raise WeaklocError("robustness: nothing to score (give a checkpoint and/or baselines)")
    lo_hi = tuple(config["evaluate"]["baseline_percentiles"])
    for row in tqdm(rows.itertuples(index=False), total=len(rows), desc=f"robustness {level}", unit="img",
                    disable=not progress):
        mask = read_mask(row.mask)
        if localizer is not None:
            rgb = read_rgb(row.image)
            if rgb.shape[:2] != mask.shape:
                raise WeaklocError(f"{row.mask}: mask size differs from its image {row.image}")
            methods["pipeline"].append(ScoreHistogram.from_maps(localizer(rgb).prob, mask))
        for b in baselines:
            from weakloc.baselines import baseline_map

            methods[baseline_variant(b)].append(ScoreHistogram.from_maps(_quantised(baseline_map(b, row.image, lo_hi)),
                                                                     mask))
    summaries = {}
    boot = BootstrapSettings.from_config(config)
    for name, hists in methods.items():
        s = summarize_localization(hists, threshold)
        s.pop("threshold_curve", None)
        s["interval"], s["dataset_level"]["interval"] = localization_intervals(hists, threshold, boot)
        s["bootstrap"] = boot.describe()
        summaries[name] = s
    out = {"level": level, "kind": kind, "value": value, "n_images": len(rows), "threshold": threshold,
           "methods": summaries}
    if localizer is not None:
        out["pipeline"] = {"fusion": localizer.fusion, "segmenters": localizer.segmenter_names}
    return out


def write_level(result: dict, path: str | Path) -> None:
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
