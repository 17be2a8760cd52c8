"""Figures from a small fake results tree: written, readable, deterministic; bad inputs named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.figures import (
    _folder_label,
    choose_examples,
    f1_by_segmenter,
    parse_variant,
    qualitative_panels,
    seed_of,
    threshold_curves,
    training_curves,
)
from weakloc.io import write_mask, write_prob
from weakloc.manifest import read_manifest

SIZE = 48


def _results_tree(root: Path) -> dict:
    """data/prepared/toy (8 test images, 5 manipulated with masks), one seed's maps, two
    seeds' scores, a baseline's scores, two training logs."""
    rng = np.random.default_rng(0)
    prep = root / "data/prepared/toy"
    (prep / "images").mkdir(parents=True)
    rows = []
    for i in range(10):
        image_id = f"img{i:02d}"
        label = int(i % 3 != 0)
        split = "train" if i >= 8 else "test"
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(prep / "images" / f"{image_id}.png")
        mask = np.zeros((SIZE, SIZE), bool)
        if label:
            mask[10:30, 12:34] = True
        write_mask(mask, prep / "masks" / f"{image_id}.png")
        rows.append({"id": image_id, "split": split, "label": label, "image": f"images/{image_id}.png",
                     "mask": "" if i == 7 else f"masks/{image_id}.png", "width": SIZE, "height": SIZE, "source": "toy"})
    pd.DataFrame(rows).to_csv(prep / "manifest.csv", index=False)

    res = root / "results/toy"
    cams = res / "seed0/cams"
    fused = res / "seed0/fused/attention"
    segs = res / "segments/slic/k3y"
    refined = res / "seed0/refined/attention/slic/default"
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for row in rows:
        for b in (1, 2, 3):
            write_prob(rng.random((SIZE, SIZE)), cams / f"block{b}" / f"{row['id']}.png")
        write_prob(rng.random((SIZE, SIZE)), fused / f"{row['id']}.png")
        write_prob(rng.random((SIZE, SIZE)), refined / f"{row['id']}.png")
        segs.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(segs / f"{row['id']}.npz", labels=((yy // 12) * 4 + xx // 12).astype(np.int32))

    thresholds = np.linspace(0, 1, 21).tolist()
    scores = []
    for s in (0, 1):
        for stem, f1 in [("fused-attention", 0.30), ("fused-mean", 0.25), ("refined-attention-slic", 0.34),
                         ("refined-mean-slic", 0.28), ("refined-attention-all", 0.36),
                         ("refined-attention-slic-prior10", 0.5)]:
            curve = (f1 + 0.02 * s) * np.exp(-((np.asarray(thresholds) - 0.4) ** 2) / 0.1)
            path = res / f"seed{s}/scores/{stem}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"f1": f1 + 0.02 * s, "iou": f1 / 2, "n_images": 5,
                                        "threshold_curve": {"thresholds": thresholds, "f1": curve.tolist()}}))
            scores.append(path)
    base = res / "baselines/scores/baseline-ela.json"
    base.parent.mkdir(parents=True)
    base.write_text(json.dumps({"f1": 0.2, "threshold_curve": {"thresholds": thresholds, "f1": [0.2] * 21}}))

    logs = []
    for s in (0, 1):
        log = root / f"checkpoints/toy/seed{s}/train_log.csv"
        log.parent.mkdir(parents=True)
        pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.6, 0.5 - 0.01 * s], "val_loss": [0.69, 0.65, 0.6],
                      "val_auc": [0.55, 0.62, 0.7], "lr": [2e-3] * 3,
                      "seconds": [10.0, 10.5, 9.8]}).to_csv(log, index=False)
        logs.append(log)
    return {"manifest": prep / "manifest.csv", "cams": cams, "fused": fused, "segments": segs,
            "refined": refined, "scores": scores, "baseline": base, "logs": logs}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    return _results_tree(tmp_path_factory.mktemp("tree"))


def _assert_png(path: Path, min_bytes: int = 10_000, min_side: int = 200) -> None:
    assert path.is_file() and path.stat().st_size > min_bytes
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= min_side
        arr = np.asarray(img.convert("L"))
    assert arr.std() > 5, "the figure should not be a blank canvas"


def test_examples_are_a_seeded_choice_of_manipulated_images_with_masks(tree):
    rows = read_manifest(tree["manifest"], split="test")
    eligible = {"img01", "img02", "img04", "img05"}  # label 1, mask known (img07 has none), test split
    first = choose_examples(rows, 3, seed=0)
    assert first == choose_examples(rows, 3, seed=0)
    assert len(first) == 3 and set(first) <= eligible
    assert first == [i for i in rows["id"] if i in first], "ids come back in manifest order"
    assert {tuple(choose_examples(rows, 2, seed=s)) for s in range(10)} != {tuple(choose_examples(rows, 2, seed=0))}
    assert set(choose_examples(rows, 99, seed=1)) == eligible
    assert choose_examples(rows, 0, seed=0) == []


def test_qualitative_panel_is_written_and_deterministic(tree, tmp_path):
    kwargs = dict(fused_dirs=[tree["fused"]], segment_dirs=[tree["segments"]], refined_dirs=[tree["refined"]],
                  n=3, seed=0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    ids = qualitative_panels(tree["manifest"], tree["cams"], out=a, **kwargs)
    assert qualitative_panels(tree["manifest"], tree["cams"], out=b, **kwargs) == ids
    _assert_png(a)
    assert a.read_bytes() == b.read_bytes()
    with Image.open(a) as img:
        assert img.size[0] > img.size[1], "8 columns (image, truth, 3 blocks, fused, segments, refined), 3 rows"


def test_qualitative_panel_names_a_missing_map(tree, tmp_path):
    ids = choose_examples(read_manifest(tree["manifest"], split="test"), 3, seed=0)
    victim = tree["refined"] / f"{ids[0]}.png"
    saved = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(WeaklocError, match=f"{ids[0]}.png"):
            qualitative_panels(tree["manifest"], tree["cams"], [tree["fused"]], [tree["segments"]],
                               [tree["refined"]], tmp_path / "x.png", n=3, seed=0)
    finally:
        victim.write_bytes(saved)
    assert not (tmp_path / "x.png").exists()


def test_f1_by_segmenter_has_a_point_per_seed(tree, tmp_path):
    out = tmp_path / "seg.png"
    table = f1_by_segmenter(tree["scores"] + [tree["baseline"]], out)
    _assert_png(out)
    assert len(table) == 10 and set(table["seed"]) == {0, 1}, "baselines and prior ablations are not in this figure"
    assert set(table["segset"]) == {"none", "slic", "all"}
    mean = table[table["variant"] == "refined-attention-slic"]["value"].mean()
    assert mean == pytest.approx(0.35)


def test_threshold_curves_include_baselines(tree, tmp_path):
    out = tmp_path / "thr.png"
    table = threshold_curves(tree["scores"] + [tree["baseline"]], out)
    _assert_png(out)
    assert set(table["family"]) == {"fused", "refined", "prior", "baseline"}
    assert (table[table["variant"] == "baseline-ela"]["seed"] == -1).all()


def test_training_curves(tree, tmp_path):
    out = tmp_path / "train.png"
    table = training_curves(tree["logs"], out)
    _assert_png(out)
    assert set(table["run"]) == {"seed0", "seed1"} and len(table) == 6


def test_bad_inputs_name_the_file(tree, tmp_path):
    bad = tmp_path / "seed0/scores/fused-max.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"iou": 0.1}))
    with pytest.raises(WeaklocError, match="fused-max.json.*'f1'"):
        f1_by_segmenter([bad], tmp_path / "o.png")
    with pytest.raises(WeaklocError, match="fused-max.json.*threshold_curve"):
        threshold_curves([bad], tmp_path / "o.png")
    with pytest.raises(WeaklocError, match="nope.json: score file not found"):
        f1_by_segmenter([tmp_path / "nope.json"], tmp_path / "o.png")
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(WeaklocError, match="train_log.csv: training log lacks column"):
        training_curves([log], tmp_path / "o.png")
    assert not (tmp_path / "o.png").exists()


def test_column_titles_from_folders():
    assert _folder_label("results/d/seed0/refined/attention/slic/default", "refined") == "attention, slic"
    assert _folder_label("results/d/seed0/fused/mean", "fused") == "mean"
    assert _folder_label("results/d/segments/sam/ab12cd", "segments", keep=1) == "sam"


def test_names_and_seeds_from_paths():
    assert parse_variant("refined-attention-all") == ("refined", "attention", "all")
    assert parse_variant("fused-wavelet") == ("fused", "wavelet", "none")
    assert parse_variant("baseline-noi1") == ("baseline", "", "noi1")
    assert parse_variant("refined-mean-slic-prior10") == ("prior", "mean", "slic")
    assert parse_variant("block3") == ("block", "", "block3")
    assert parse_variant("whatever") == ("other", "", "whatever")
    assert seed_of("results/d/seed12/scores/fused-mean.json") == 12
    assert seed_of("results/d/baselines/scores/baseline-ela.json") is None


def test_cli_draws_every_figure(tree, tmp_path, capsys):
    s = [str(p) for p in tree["scores"]]
    calls = {
        "examples.png": ["examples", "--manifest", str(tree["manifest"]), "--cams", str(tree["cams"]),
                         "--fused", str(tree["fused"]), "--segments", str(tree["segments"]),
                         "--refined", str(tree["refined"]), "--config-json", '{"evaluate": {"n_examples": 2}}'],
        "segmenters.png": ["segmenters", "--scores", *s],
        "thresholds.png": ["thresholds", "--scores", *s, str(tree["baseline"])],
        "training.png": ["training", "--logs", *map(str, tree["logs"])],
    }
    for name, argv in calls.items():
        assert main(["figures", *argv, "--out", str(tmp_path / name)]) == 0, name
        _assert_png(tmp_path / name)
    assert "2 images" in capsys.readouterr().err
    assert main(["figures", "training", "--logs", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "t.png")]) == 2
    assert "missing.csv: training log not found" in capsys.readouterr().err
