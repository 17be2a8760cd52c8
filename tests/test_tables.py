"""`weakloc tables` on a small fake results tree with two seeds."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.tables import build_tables, parse_variant

KEYS = ("f1", "iou", "mcc", "auc", "best_f1")


def score_json(base: float, n_missing: int = 0) -> dict:
    vals = {k: round(base + 0.01 * i, 4) for i, k in enumerate(KEYS)}
    return {**vals, "n_images": 12, "n_missing": n_missing, "n_empty_gt": 0, "auc_excluded": 0,
            "threshold": 0.5, "dataset_level": {k: v + 0.1 for k, v in vals.items()},
            "threshold_curve": {"thresholds": [0.0, 0.5, 1.0], "f1": [0.1, base, 0.0]}}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


VARIANTS = {"block1": 0.10, "block2": 0.20, "fused-attention": 0.30, "fused-mean": 0.32,
            "refined-attention-slic": 0.40, "refined-attention-sam": 0.42, "refined-attention-all": 0.44,
            "refined-mean-slic": 0.41, "refined-attention-slic-prior0.5": 0.38,
            "refined-attention-slic-prior10": 0.39, "sel-75-90-fused-attention": 0.25, "notes": 0.0}


@pytest.fixture()
def results(tmp_path):
    root = tmp_path / "results" / "synthetic"
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for v, base in VARIANTS.items():
            write(root / f"seed{seed}" / "scores" / f"{v}.json", score_json(base + shift))
        write(root / f"seed{seed}" / "detect" / "metrics.json",
              {"auc": 0.8 + shift, "accuracy": 0.7 + shift, "f1": 0.6 + shift, "n_images": 24, "n_positive": 12,
               "threshold": 0.5})
    write(root / "baselines" / "scores" / "baseline-dct.json", score_json(0.35, n_missing=2))
    write(root / "baselines" / "scores" / "baseline-ela.json", score_json(0.15))
    return root


def test_parse_variant():
    assert parse_variant("block3") == ("block", {"block": "3"})
    assert parse_variant("refined-attention-all") == ("refined", {"fusion": "attention", "segset": "all"})
    assert parse_variant("refined-max-sam-prior0.5") == ("prior", {"fusion": "max", "segset": "sam", "strength": "0.5"})
    assert parse_variant("sel-75-90-fused-wavelet") == ("sel", {"qualities": "75-90", "fusion": "wavelet"})
    assert parse_variant("something-else") is None


def test_tables_mean_std_over_two_seeds(results, tmp_path):
    out = tmp_path / "tables"
    names = build_tables(results, out, {"sel": {"qualities": [90]}})
    assert set(names) == {"localization", "localization_dataset_level", "detection", "ablation_fusion_segmenter",
                          "ablation_sel", "ablation_prior", "baselines", "baselines_dataset_level"}
    loc = pd.read_csv(out / "localization.csv")
    assert list(loc["row"]) == ["WCBnet block 1 map", "WCBnet block 2 map", "Fused (attention)", "Fused (mean)",
                                "Fused (attention) + SLIC", "Fused (attention) + SAM",
                                "Fused (attention) + all segmenters"]
    row = loc.set_index("row").loc["Fused (attention)"]
    assert row["f1_mean"] == pytest.approx(0.31)                       # mean of 0.30 and 0.32
    assert row["f1_std"] == pytest.approx(np.std([0.30, 0.32], ddof=1))
    assert row["n_seeds"] == 2
    md = (out / "localization.md").read_text()
    assert "0.310 ± 0.014" in md and "best-F1 (oracle)" in md and "2 seeds" in md
    dl = pd.read_csv(out / "localization_dataset_level.csv").set_index("row")
    assert dl.loc["Fused (attention)", "f1_mean"] == pytest.approx(0.41)

    det = pd.read_csv(out / "detection.csv")
    assert det.loc[0, "auc_mean"] == pytest.approx(0.81) and det.loc[0, "accuracy_mean"] == pytest.approx(0.71)

    grid = pd.read_csv(out / "ablation_fusion_segmenter.csv").set_index("row")
    assert grid.loc["attention", "none_mean"] == pytest.approx(0.31)
    assert grid.loc["mean", "slic_mean"] == pytest.approx(0.42)
    assert np.isnan(grid.loc["mean", "sam_mean"])  # not run: empty cell, not a number

    prior = pd.read_csv(out / "ablation_prior.csv")
    assert list(prior["row"]) == ["s = 0.5", "s = 10"]
    sel = pd.read_csv(out / "ablation_sel.csv")
    assert list(sel["row"]) == ["q = 90 (main model)", "q = 75, 90"]

    base = pd.read_csv(out / "baselines.csv").set_index("row")
    assert base.loc["DCT", "f1_mean"] == pytest.approx(0.35) and np.isnan(base.loc["DCT", "f1_std"])
    assert "baseline-dct (2)" in (out / "baselines.md").read_text()  # missing maps are reported

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_seeds"] == 2 and summary["detection"]["auc"] == pytest.approx(0.81)
    assert summary["localization"]["refined-attention-slic"]["f1"] == pytest.approx(0.41)
    readme = (out / "README.md").read_text()
    assert readme.count("### ") == len(names)
    assert not (out / "literature.csv").exists()


def test_markdown_and_latex_are_well_formed(results, tmp_path):
    out = tmp_path / "tables"
    for name in build_tables(results, out):
        md = [ln for ln in (out / f"{name}.md").read_text().splitlines() if ln.startswith("|")]
        pipes = {ln.replace("\\|", "").count("|") for ln in md}
        assert len(pipes) == 1 and len(md) >= 3, name
        assert re.fullmatch(r"\|---(\|---:)+\|", md[1]), name
        tex = (out / f"{name}.tex").read_text()
        assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
        assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
        ncols = len(re.search(r"\\begin\{tabular\}\{(lr*)\}", tex).group(1))
        body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
        for line in body.splitlines():
            if line.endswith("\\\\"):
                assert line.count(" & ") == ncols - 1, (name, line)
        assert "±" not in tex and "prob > " not in tex, name  # escaped as $\pm$ and $>$
        assert "_" not in re.sub(r"\\_|tab:[a-z-]+", "", tex.split("\\toprule")[1]), name  # escaped


def test_single_seed_has_no_std(results, tmp_path):
    import shutil
    shutil.rmtree(results / "seed1")
    build_tables(results, tmp_path / "t")
    md = (tmp_path / "t" / "localization.md").read_text()
    assert "±" not in md.split("\n*")[0] and "0.300" in md


def test_missing_inputs_give_clear_errors(results, tmp_path):
    with pytest.raises(WeaklocError, match="results folder not found"):
        build_tables(tmp_path / "nothing", tmp_path / "t")
    empty = tmp_path / "empty"
    (empty / "seed0").mkdir(parents=True)
    with pytest.raises(WeaklocError, match="no score files"):
        build_tables(empty, tmp_path / "t")
    (results / "seed1" / "scores" / "fused-mean.json").unlink()
    with pytest.raises(WeaklocError, match=r"seed1/scores/fused-mean\.json: missing"):
        build_tables(results, tmp_path / "t")
    write(results / "seed1" / "scores" / "fused-mean.json", {"f1": 0.3})
    with pytest.raises(WeaklocError, match=r"fused-mean\.json: lacks key\(s\) iou"):
        build_tables(results, tmp_path / "t")
    (results / "seed1" / "scores" / "fused-mean.json").write_text("{not json")
    with pytest.raises(WeaklocError, match="not valid JSON"):
        build_tables(results, tmp_path / "t")


def test_literature_table_from_quoted_numbers_and_cli(results, tmp_path, capsys):
    lit = tmp_path / "lit.csv"
    lit.write_text("method,dataset,metric,value,source\nSomeNet,CASIA2,pixel F1,0.5,Author et al. 2020 Table 3\n")
    out = tmp_path / "tables"
    assert main(["tables", "--results", str(results), "--out", str(out), "--literature", str(lit)]) == 0
    md = (out / "literature.md").read_text()
    assert "SomeNet (CASIA2)" in md and "Author et al. 2020 Table 3" in md and "not run here" in md
    lit.write_text("method,dataset,metric,value,source\nSomeNet,CASIA2,pixel F1,0.5,\n")
    assert main(["tables", "--results", str(results), "--out", str(out), "--literature", str(lit)]) == 2
    assert "has no source" in capsys.readouterr().err
