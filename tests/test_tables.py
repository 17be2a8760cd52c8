"""`weakloc tables` on a small fake results tree with two seeds."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from factories import score_json, write
from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.layout import parse_variant
from weakloc.tables import Cell, Table, build_tables

VARIANTS = {"block1": 0.10, "block2": 0.20, "fused-attention": 0.30, "fused-mean": 0.32,
            "refined-attention-slic": 0.40, "refined-attention-sam": 0.42, "refined-attention-all": 0.44,
            "refined-mean-slic": 0.41, "refined-attention-slic-prior0.5": 0.38,
            "refined-attention-slic-prior10": 0.39, "sel-75-90-fused-attention": 0.25, "notes": 0.0}


def files(root, *, seeds=None, drop=()):
    """The score files under a results tree, as the tables rule would list them."""
    out = sorted(p for p in root.rglob("*.json") if p.stem != "notes")
    if seeds is not None:
        out = [p for p in out if "baselines" in p.parts or any(f"seed{s}" in p.parts for s in seeds)]
    return [p for p in out if p.stem not in drop]


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
    names = build_tables(files(results), out, {"sel": {"qualities": [90]}})
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


def md_rows(md: str) -> list[list[str]]:
    """The cells of a Markdown table's lines (header, alignment row, body), an escaped pipe read back as ``|``."""
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
            for ln in md.splitlines() if ln.startswith("|")]


def test_markdown_and_latex_are_well_formed(results, tmp_path):
    out = tmp_path / "tables"
    for name in build_tables(files(results), out):
        header, align, *body = md_rows((out / f"{name}.md").read_text())
        assert body and {len(r) for r in body} == {len(header)} == {len(align)}, name
        assert re.fullmatch(":?-+", align[0]) and all(re.fullmatch("-+:", a) for a in align[1:]), name  # numbers right
        tex = (out / f"{name}.tex").read_text()
        assert tex.startswith("% generated by `weakloc tables`; needs \\usepackage{booktabs}\n")
        assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
        assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
        assert f"\\label{{tab:{name.replace('_', '-')}}}" in tex
        plain = tex.replace("\\{", "").replace("\\}", "").replace("\\$", "")
        assert plain.count("{") == plain.count("}") and plain.count("$") % 2 == 0, name  # balanced
        ncols = len(re.search(r"\\begin\{tabular\}\{(lr*)\}", tex).group(1))
        body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
        assert body.count("\\midrule") == 1
        for line in body.splitlines():
            if line.endswith("\\\\"):
                assert line.count(" & ") == ncols - 1, (name, line)
        assert "±" not in tex and "prob > " not in tex, name  # escaped as $\pm$ and $>$
        assert "_" not in re.sub(r"\\_|tab:[a-z-]+", "", tex.split("\\toprule")[1]), name  # escaped


def test_markdown_numbers_are_the_csvs(results, tmp_path):
    """Every number of every Markdown table is its CSV's mean, std and interval, in that order."""
    out = tmp_path / "tables"
    for name in build_tables(files(results), out):
        header, _, *body = md_rows((out / f"{name}.md").read_text())
        csv = pd.read_csv(out / f"{name}.csv")
        keys = [c.removesuffix("_mean") for c in csv.columns if c.endswith("_mean")]
        assert len(header) == len(keys) + 1 and [r[0] for r in body] == list(csv["row"]), name
        for row, rec in zip(body, csv.to_dict("records"), strict=True):
            for text, key in zip(row[1:], keys, strict=True):
                expected = [rec[c] for c in (f"{key}_{s}" for s in ("mean", "std", "lo", "hi"))
                            if c in rec and not pd.isna(rec[c])]
                shown = [float(x) for x in re.findall(r"-?\d+\.\d+", text)]
                assert shown == pytest.approx(expected, abs=5e-4), (name, row[0], key, text)


def test_markdown_and_latex_escape_and_mark_missing_cells():
    t = Table("demo_table", "F1 & IoU_x", [("f1", "F1"), ("iou", "IoU|50")], notes=["mean ± std; prob > 0.5 & 10%"])
    t.rows += [("a|b", {"f1": Cell(0.31, 0.014, 2), "iou": Cell(None, None, 0)}),
               ("c_d & e", {"f1": Cell(0.5, None, 1)})]
    md = t.to_markdown()
    assert md.startswith("### F1 & IoU_x\n\n|") and md.endswith("\n\n*mean ± std; prob > 0.5 & 10%*\n")
    assert "IoU\\|50" in md and "a\\|b" in md  # a pipe in text does not split the cell
    assert md_rows(md)[2:] == [["a|b", "0.310 ± 0.014", ""], ["c_d & e", "0.500", ""]]
    tex = t.to_latex()
    assert "\\caption{F1 \\& IoU\\_x}" in tex and "\\label{tab:demo-table}" in tex
    assert all(f"\\{rule}\n" in tex for rule in ("toprule", "midrule", "bottomrule"))
    assert " & F1 & IoU|50 \\\\\n" in tex
    assert "a|b & 0.310 $\\pm$ 0.014 & -- \\\\\n" in tex and "c\\_d \\& e & 0.500 & -- \\\\\n" in tex
    assert "\\par\\smallskip\\footnotesize mean $\\pm$ std; prob $>$ 0.5 \\& 10\\%\n\\end{table}" in tex


def test_single_seed_has_no_std(results, tmp_path):
    import shutil
    shutil.rmtree(results / "seed1")
    build_tables(files(results), tmp_path / "t")
    md = (tmp_path / "t" / "localization.md").read_text()
    assert "±" not in md.split("\n*")[0] and "0.300" in md


def test_missing_inputs_give_clear_errors(results, tmp_path):
    with pytest.raises(WeaklocError, match="score file not found"):
        build_tables([tmp_path / "nothing" / "seed0" / "scores" / "fused-mean.json"], tmp_path / "t")
    with pytest.raises(WeaklocError, match="no score files given"):
        build_tables([], tmp_path / "t")
    with pytest.raises(WeaklocError, match=r"notes\.json: not a score file"):
        build_tables([results / "seed0" / "scores" / "notes.json"], tmp_path / "t")
    given = files(results)
    (results / "seed1" / "scores" / "fused-mean.json").unlink()
    with pytest.raises(WeaklocError, match=r"fused-mean\.json: score file not found"):
        build_tables(given, tmp_path / "t")
    with pytest.raises(WeaklocError, match=r"fused-mean\.json: given for seed\(s\) 0 but not for seed 1"):
        build_tables(files(results), tmp_path / "t")
    write(results / "seed1" / "scores" / "fused-mean.json", {"f1": 0.3})
    with pytest.raises(WeaklocError, match=r"fused-mean\.json: lacks key\(s\) iou"):
        build_tables(files(results), tmp_path / "t")
    (results / "seed1" / "scores" / "fused-mean.json").write_text("{not json")
    with pytest.raises(WeaklocError, match="not valid JSON"):
        build_tables(files(results), tmp_path / "t")


def test_literature_table_from_quoted_numbers_and_cli(results, tmp_path, capsys):
    lit = tmp_path / "lit.csv"
    lit.write_text("method,dataset,metric,value,source\nSomeNet,CASIA2,pixel F1,0.5,Author et al. 2020 Table 3\n")
    out = tmp_path / "tables"
    assert main(["tables", *map(str, files(results)), "--out", str(out), "--literature", str(lit)]) == 0
    md = (out / "literature.md").read_text()
    assert "SomeNet (CASIA2)" in md and "Author et al. 2020 Table 3" in md and "not run here" in md
    lit.write_text("method,dataset,metric,value,source\nSomeNet,CASIA2,pixel F1,0.5,\n")
    assert main(["tables", *map(str, files(results)), "--out", str(out), "--literature", str(lit)]) == 2
    assert "has no source" in capsys.readouterr().err


def test_tables_read_only_the_files_given_not_what_lies_on_disk(results, tmp_path):
    """Staleness: a seed or a variant of an earlier configuration, still on disk, stays out of the tables."""
    out = tmp_path / "tables"
    build_tables(files(results, seeds=[0]), out)  # seed1's files lie beside them, from an earlier run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_seeds"] == 1 and summary["seeds"] == [0]
    assert summary["detection"]["auc"] == pytest.approx(0.80)  # seed 0 alone, not the mean 0.81
    loc = pd.read_csv(out / "localization.csv").set_index("row")
    assert loc.loc["Fused (attention)", "f1_mean"] == pytest.approx(0.30)
    assert set(loc["n_seeds"]) == {1}

    build_tables(files(results, drop=("fused-mean", "refined-mean-slic")), out)  # a fusion dropped from the config
    loc = pd.read_csv(out / "localization.csv")
    assert "Fused (mean)" not in set(loc["row"])
    assert "fused-mean" not in json.loads((out / "summary.json").read_text())["localization"]
    grid = pd.read_csv(out / "ablation_fusion_segmenter.csv")
    assert "mean" not in set(grid["row"])


def test_sel_ablation_model_detection_is_not_the_main_models(results, tmp_path):
    det = results / "sel-75-90" / "seed0" / "detect" / "metrics.json"
    write(det, {"auc": 0.1, "accuracy": 0.1, "f1": 0.1})
    with pytest.raises(WeaklocError, match="not a score file"):
        build_tables([*files(results), det], tmp_path / "t")


def test_peer_rows_and_combined_f1(results, tmp_path):
    from scipy.stats import hmean

    for seed, shift in ((0, 0.0), (1, 0.02)):
        write(results / f"seed{seed}" / "scores" / "peer-attention-edgecam.json", score_json(0.31 + shift))
        write(results / f"seed{seed}" / "scores" / "peer-attention-sepl.json", score_json(0.33 + shift))
    assert parse_variant("peer-attention-sepl") == ("peer", {"fusion": "attention", "rule": "sepl"})
    out = tmp_path / "tables"
    build_tables(files(results), out, config={"segmenters": {"use": ["slic", "sam"]}})
    loc = pd.read_csv(out / "localization.csv")
    rows = list(loc["row"])
    assert rows[-2:] == ["EdgeCAM-style", "SEPL-style"]
    assert loc.set_index("row").loc["SEPL-style", "f1_mean"] == pytest.approx(0.34)
    det = pd.read_csv(out / "detection.csv").iloc[0]
    assert np.isnan(det["combined_f1_mean"])  # these detection files predate image_f1: no combined F1 invented
    for seed, shift in ((0, 0.0), (1, 0.02)):
        path = results / f"seed{seed}" / "detect" / "metrics.json"
        write(path, {**json.loads(path.read_text()), "image_f1": 0.5 + shift})
    build_tables(files(results), out, config={"segmenters": {"use": ["slic", "sam"]}})
    det = pd.read_csv(out / "detection.csv").iloc[0]
    # default pipeline = refined-attention-all (0.44 / 0.46); image F1 (sens./spec.) 0.5 / 0.52
    assert det["pixel_f1_mean"] == pytest.approx(0.45) and det["image_f1_mean"] == pytest.approx(0.51)
    assert det["combined_f1_mean"] == pytest.approx(np.mean([hmean([0.44, 0.5]), hmean([0.46, 0.52])]))
