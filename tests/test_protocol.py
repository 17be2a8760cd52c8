"""The protocol tables (cross-dataset, robustness, quoted literature) and one robustness level."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean

from factories import random_checkpoint
from weakloc.cli import main
from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.protocol import build_protocol_tables, quoted_table

ROOT_CFG = {"segmenters": {"use": ["slic", "sam"]}, "evaluate": {"baselines": ["ela"]}}
VARIANTS = {"fused-attention": 0.30, "refined-attention-all": 0.44, "peer-attention-edgecam": 0.31,
            "peer-attention-sepl": 0.33}


def score_json(f1):
    return {"f1": f1, "iou": f1 / 2, "mcc": f1 / 3, "auc": 0.5 + f1 / 2, "best_f1": f1 + 0.1, "n_images": 6,
            "n_missing": 0, "n_empty_gt": 0, "auc_excluded": 0, "threshold": 0.5, "dataset_level": {}}


def fake_results(root, shift, seeds=(0, 1)):
    files = []
    for seed in seeds:
        for v, f1 in VARIANTS.items():
            p = root / f"seed{seed}" / "scores" / f"{v}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(score_json(f1 + shift + 0.01 * seed)))
            files.append(p)
        p = root / f"seed{seed}" / "detect" / "metrics.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"auc": 0.8, "accuracy": 0.7, "f1": 0.9, "image_f1": 0.6 + shift + 0.02 * seed,
                                 "n_images": 12, "n_positive": 6, "threshold": 0.5}))
        files.append(p)
    p = root / "baselines" / "scores" / "baseline-ela.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(score_json(0.15 + shift)))
    return files + [p]


def level(name, kind, value, f1s):
    return {"level": name, "kind": kind, "value": value, "n_images": 6, "threshold": 0.5,
            "methods": {m: {"f1": f} for m, f in f1s.items()}}


def test_cross_dataset_robustness_and_literature_tables(tmp_path):
    own = fake_results(tmp_path / "results/synthetic", 0.0)
    shift = fake_results(tmp_path / "results/synthetic/cross/synthshift", -0.1)
    lv = []
    for i, (name, kind, value, f1s) in enumerate([
            ("jpeg-70", "jpeg", 70, {"pipeline": 0.30}), ("none", "none", None, {"pipeline": 0.40}),
            ("jpeg-70", "jpeg", 70, {"pipeline": 0.32}), ("none", "none", None, {"pipeline": 0.42}),
            ("none", "none", None, {"baseline-ela": 0.2}), ("jpeg-70", "jpeg", 70, {"baseline-ela": 0.1})]):
        p = tmp_path / f"lv{i}.json"
        p.write_text(json.dumps(level(name, kind, value, f1s)))
        lv.append(str(p))
    lit = tmp_path / "quoted.csv"
    pd.DataFrame([{"method": "X", "supervision": "image labels", "train_set": "CASIA v2", "test_set": t,
                   "metric": "pixel F1", "threshold": "0.5", "value": v, "source": "Paper 2025",
                   "where_in_source": "Table 1", "checked": "no", "checked_how": "not readable"}
                  for t, v in (("CASIA v1", "0.1"), ("Columbia", "0.2"))]).to_csv(lit, index=False)
    out = tmp_path / "protocol"
    cfg = validate_config(dict(ROOT_CFG))
    names = build_protocol_tables([("synthetic", own), ("synthshift", shift)], out, cfg, robustness=lv,
                                  literature=lit)
    assert names == ["cross_dataset", "robustness", "literature"]
    cross = pd.read_csv(out / "cross_dataset.csv").set_index("row")
    assert list(cross.index) == ["Fused (attention)", "Fused (attention) + all segmenters (default pipeline)",
                                 "EdgeCAM-style", "SEPL-style", "ELA"]
    main_row = cross.loc["Fused (attention) + all segmenters (default pipeline)"]
    assert main_row["synthetic:f1_mean"] == pytest.approx(0.445)
    assert main_row["synthshift:image_f1_mean"] == pytest.approx(0.51)
    expected = np.mean([hmean([0.34, 0.5]), hmean([0.35, 0.52])])
    assert main_row["synthshift:combined_f1_mean"] == pytest.approx(expected)
    assert main_row["synthshift:combined_f1_std"] > 0
    assert (np.isnan(cross.loc["ELA", "synthetic:image_f1_mean"])
            and cross.loc["ELA", "synthshift:f1_mean"] == pytest.approx(0.05))
    robust = pd.read_csv(out / "robustness.csv").set_index("row")
    assert list(robust.columns[:4]) == ["none_mean", "none_std", "jpeg-70_mean", "jpeg-70_std"]
    assert robust.index[0] == "Fused (attention) + SLIC, threshold decision"  # the segmenters and rule scored
    assert (robust.iloc[0]["jpeg-70_mean"] == pytest.approx(0.31)
            and robust.loc["ELA", "none_mean"] == pytest.approx(0.2))
    md = (out / "literature.md").read_text()
    assert md.startswith("### Quoted from the literature (not run here)") and "†" in md and "Paper 2025 (Table 1)" in md
    assert "Quoted from the literature" in (out / "README.md").read_text()


def test_protocol_tables_cli_and_bad_inputs(tmp_path, capsys):
    own = fake_results(tmp_path / "results/synthetic", 0.0, seeds=(0,))
    out = tmp_path / "p"
    assert main(["protocol-tables", "--dataset", "synthetic", *map(str, own), "--out", str(out)]) == 0
    assert (out / "cross_dataset.md").is_file() and not (out / "robustness.csv").exists()
    assert main(["protocol-tables", "--dataset", "synthetic", "--out", str(out)]) == 2
    assert "give a name and its score files" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("method,value\nX,0.1\n")
    with pytest.raises(WeaklocError, match="lacks column"):
        quoted_table(bad)


def test_shipped_literature_file_is_well_formed_and_labelled():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs/literature/quoted.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(df) == 25 and set(df["checked"]) <= {"yes", "no"} and (df["source"] != "").all()
    assert (df["checked_how"] != "").all()
    table = quoted_table(path)
    assert [r[0].split(" [")[0] for r in table.rows] == ["MIL-FCN + WSCL (ICCV 2023)", "EdgeCAM (2024)",
                                                        "ViLaCo (AAAI 2026)", "MIL-FCN", "ManTra-Net"]
    vilaco = dict(table.rows[2][1])
    assert vilaco["CASIA v1"].mean == pytest.approx(0.491) and vilaco["NIST16"].mean == pytest.approx(0.267)


def test_robustness_level_of_baselines(tmp_path):
    from test_perturb import make_prepared
    from weakloc.perturb import perturb_dataset
    from weakloc.robustness import score_level

    manifest = make_prepared(tmp_path / "prep")
    perturb_dataset(manifest, "test", "resize-0.5", tmp_path / "r", seed=0)
    cfg = validate_config({})
    res = score_level(tmp_path / "r" / "manifest.csv", "resize-0.5", cfg, baselines=["ela"], progress=False)
    assert res["kind"] == "resize" and res["value"] == 0.5 and res["n_images"] == 2
    ela = res["methods"]["baseline-ela"]
    assert 0.0 <= ela["f1"] <= 1.0
    assert ela["interval"]["f1"][0] <= ela["f1"] <= ela["interval"]["f1"][1]  # the robustness table's interval
    assert ela["bootstrap"]["resamples"] == cfg["evaluate"]["bootstrap"]["resamples"]
    clean = score_level(manifest, "none", cfg, baselines=["ela"], progress=False)
    assert clean["kind"] == "none" and clean["n_images"] == 2
    with pytest.raises(WeaklocError, match="nothing to score"):
        score_level(manifest, "none", cfg, progress=False)
    out = tmp_path / "lv.json"  # the command gets only the evaluate section, as the workflow passes it
    assert main(["robustness-baselines", "resize-0.5", "--manifest", str(tmp_path / "r" / "manifest.csv"),
                 "--baselines", "ela", "--out", str(out), "--config-json", '{"evaluate": {}}']) == 0
    assert json.loads(out.read_text())["methods"]["baseline-ela"]["f1"] == pytest.approx(
        res["methods"]["baseline-ela"]["f1"])


def test_robustness_pipeline_command_with_the_rules_sections(tmp_path):
    """`weakloc robustness` runs the localize pipeline with exactly the sections the rule passes."""

    from test_perturb import make_prepared
    from weakloc.cli import build_parser

    ckpt = random_checkpoint(tmp_path / "wcbnet.pt")
    manifest = make_prepared(tmp_path / "prep")
    argv = ["robustness", "none", "--manifest", str(manifest), "--checkpoint", str(ckpt),
            "--out", str(tmp_path / "o.json")]
    declared = build_parser().parse_args(argv).config_sections
    assert main([*argv, "--config-json", json.dumps({k: {} for k in declared})]) == 0
    res = json.loads((tmp_path / "o.json").read_text())
    assert res["n_images"] == 2 and 0.0 <= res["methods"]["pipeline"]["f1"] <= 1.0
    assert res["pipeline"] == {"fusion": "attention", "segmenters": ["slic"]}


def test_robustness_figure_draws_every_perturbation(tmp_path):
    from PIL import Image

    from weakloc.figures import robustness_curves

    files = []
    for i, (name, kind, value) in enumerate([("none", "none", None), ("jpeg-70", "jpeg", 70), ("jpeg-90", "jpeg", 90),
                                             ("blur-7", "blur", 7), ("resize-0.5", "resize", 0.5)]):
        p = tmp_path / f"{i}.json"
        p.write_text(json.dumps(level(name, kind, value, {"pipeline": 0.4 - 0.01 * i, "baseline-ela": 0.2})))
        files.append(p)
    out = tmp_path / "robustness.png"
    table = robustness_curves(files, out)
    assert set(table["kind"]) == {"none", "jpeg", "blur", "resize"} and len(table) == 10
    with Image.open(out) as img:
        assert img.size[0] > img.size[1] > 100
    with pytest.raises(WeaklocError, match="no perturbed level"):
        robustness_curves(files[:1], tmp_path / "x.png")
