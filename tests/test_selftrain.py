"""Self-training: pseudo-masks of the train split, a student fine-tuned on them, never a mask read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch

from factories import kill_epoch, make_toy_dataset, record_opened_files, score_json, tiny_config, write
from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.selftrain import pseudo_label, pseudo_rows, self_train, write_pseudo_masks
from weakloc.training import PIXEL_BACKGROUND, PIXEL_FOREGROUND, PIXEL_IGNORE, train_wcbnet


def selftrain_config(**selftrain):
    cfg = tiny_config()
    cfg["segmenters"]["slic"]["n_segments"] = 12
    cfg["selftrain"].update({"rounds": 1, "epochs": 2, **selftrain})
    return validate_config(cfg)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A toy dataset and a WCBnet trained on it: (manifest, checkpoint)."""
    root = tmp_path_factory.mktemp("st")
    manifest = make_toy_dataset(root / "toy")
    ckpt = root / "teacher" / "wcbnet.pt"
    train_wcbnet(manifest, tiny_config(epochs=3), 0, ckpt, root / "teacher" / "log.csv")
    return manifest, ckpt


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_pseudo_labels_authentic_exact_manipulated_mask_ring_and_median_background():
    coarse = np.tile(np.linspace(0, 1, 20, dtype=np.float32), (20, 1))  # rises left to right
    mask = np.zeros((20, 20), bool)
    mask[5:15, 12:18] = True
    assert (pseudo_label(coarse, mask, 0, 2, "median") == PIXEL_BACKGROUND).all()  # authentic: all background
    lab = pseudo_label(coarse, mask, 1, 2, "median")
    assert (lab[8:12, 14:16] == PIXEL_FOREGROUND).all()  # inside the mask, away from its border
    assert lab[10, 12] == PIXEL_IGNORE and lab[10, 10] == PIXEL_IGNORE  # the ring, both sides of the border
    assert (lab[:, :9] == PIXEL_BACKGROUND).all()  # below the median, outside the mask
    assert lab[0, 15] == PIXEL_IGNORE  # above the median, outside the mask: not known
    outside = pseudo_label(coarse, mask, 1, 0, "outside")
    np.testing.assert_array_equal(outside, np.where(mask, PIXEL_FOREGROUND, PIXEL_BACKGROUND))
    empty = pseudo_label(coarse, np.zeros_like(mask), 1, 2, "outside")  # no mask: no foreground, median rule
    assert not (empty == PIXEL_FOREGROUND).any() and (empty[:, :9] == PIXEL_BACKGROUND).all()


def test_max_images_takes_a_seeded_balanced_subset_of_the_train_split(teacher):
    manifest, _ = teacher
    train = pd.read_csv(manifest).query("split == 'train'")
    assert len(pseudo_rows(manifest, None, 0)) == len(train)
    sub = pseudo_rows(manifest, 6, 0)
    assert len(sub) == 6 and sorted(sub["label"].value_counts()) == [3, 3] and "mask" not in sub.columns
    assert sub["id"].tolist() == pseudo_rows(manifest, 6, 0)["id"].tolist()
    assert sub["id"].tolist() != pseudo_rows(manifest, 6, 1)["id"].tolist()


def test_pseudo_masks_and_self_training_never_open_a_mask(teacher, tmp_path, monkeypatch):
    """Every file both steps open is recorded: images yes, masks (which exist and read fine) never."""
    manifest, ckpt = teacher
    opened = record_opened_files(monkeypatch)
    cfg = selftrain_config(epochs=1)
    n = write_pseudo_masks(manifest, ckpt, tmp_path / "pseudo", cfg, 0)
    summary = self_train(manifest, ckpt, tmp_path / "pseudo", cfg, 0, tmp_path / "st" / "w.pt", tmp_path / "l.csv")
    monkeypatch.undo()
    masks = manifest.parent / "masks"
    assert any("/images/" in p for p in opened), "the spy saw no image being read"
    assert not [p for p in opened if str(masks) in p], "self-training opened a ground-truth mask"
    index = pd.read_csv(tmp_path / "pseudo" / "pseudo.csv", dtype={"id": str})
    train = pd.read_csv(manifest, dtype={"id": str}).query("split == 'train'")
    assert n == len(index) == len(train) and index["id"].tolist() == train["id"].tolist()
    assert np.allclose(index[["foreground", "background", "ignore"]].sum(axis=1), 1.0)
    assert (index.loc[index["label"] == 0, "background"] == 1.0).all()  # authentic images: all background
    assert summary["epochs_run"] == 1
    meta = torch.load(tmp_path / "st" / "w.pt", weights_only=True)["meta"]
    from weakloc.io import file_sha256

    assert meta["self_training"][-1]["teacher_sha256"] == file_sha256(ckpt)
    assert meta["self_training"][-1]["n_images"] == len(index)
    teacher_w, student_w = _weights(ckpt), _weights(tmp_path / "st" / "w.pt")
    assert any(not torch.equal(teacher_w[k], student_w[k]) for k in teacher_w if teacher_w[k].is_floating_point())


def test_a_killed_self_training_resumes_and_ends_like_an_uninterrupted_one(teacher, tmp_path, monkeypatch):
    manifest, ckpt = teacher
    cfg = selftrain_config(epochs=2)
    write_pseudo_masks(manifest, ckpt, tmp_path / "pseudo", cfg, 0)
    again = tmp_path / "pseudo2"
    write_pseudo_masks(manifest, ckpt, again, cfg, 0)
    for f in sorted((tmp_path / "pseudo").iterdir()):  # deterministic: the same bytes
        assert f.read_bytes() == (again / f.name).read_bytes(), f.name
    self_train(manifest, ckpt, tmp_path / "pseudo", cfg, 0, tmp_path / "full" / "w.pt", tmp_path / "full" / "l.csv")

    part = tmp_path / "part"
    kill_epoch(monkeypatch, 2)  # killed during epoch 2
    with pytest.raises(KeyboardInterrupt):
        self_train(manifest, ckpt, tmp_path / "pseudo", cfg, 0, part / "w.pt", part / "l.csv")
    monkeypatch.undo()
    summary = self_train(manifest, ckpt, tmp_path / "pseudo", cfg, 0, part / "w.pt", part / "l.csv")
    assert summary["epochs_run"] == 2
    full, resumed = _weights(tmp_path / "full" / "w.pt"), _weights(part / "w.pt")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_other_pseudo_masks_start_the_student_over(teacher, tmp_path, capsys):
    manifest, ckpt = teacher
    cfg = selftrain_config(epochs=1)
    pseudo = tmp_path / "pseudo"
    write_pseudo_masks(manifest, ckpt, pseudo, cfg, 0)
    out = tmp_path / "st" / "w.pt"
    self_train(manifest, ckpt, pseudo, cfg, 0, out, tmp_path / "l.csv")
    first = next(p for p in sorted(pseudo.glob("*.png")))
    arr = np.asarray(PIL.Image.open(first)).copy()
    arr[0, 0] = PIXEL_FOREGROUND if arr[0, 0] != PIXEL_FOREGROUND else PIXEL_BACKGROUND
    PIL.Image.fromarray(arr).save(first)
    capsys.readouterr()
    self_train(manifest, ckpt, pseudo, cfg, 0, out, tmp_path / "l.csv")
    assert "belongs to another run" in capsys.readouterr().err


def test_bad_inputs_fail_with_the_file_named(teacher, tmp_path):
    manifest, ckpt = teacher
    cfg = selftrain_config(epochs=1)
    with pytest.raises(WeaklocError, match="pseudo.csv: pseudo-mask index not found"):
        self_train(manifest, ckpt, tmp_path / "nothing", cfg, 0, tmp_path / "w.pt", tmp_path / "l.csv")
    write_pseudo_masks(manifest, ckpt, tmp_path / "pseudo", cfg, 0)
    other = validate_config({**cfg, "model": {"widths": [8, 16, 32], "token_dim": 8}})
    with pytest.raises(WeaklocError, match="teacher's sel/model sections differ"):
        self_train(manifest, ckpt, tmp_path / "pseudo", other, 0, tmp_path / "w.pt", tmp_path / "l.csv")
    bad = next(iter(sorted((tmp_path / "pseudo").glob("*.png"))))
    PIL.Image.fromarray(np.full((4, 4), 200, np.uint8)).save(bad)
    with pytest.raises(WeaklocError, match=f"{bad.name}: not a pseudo-mask"):
        self_train(manifest, ckpt, tmp_path / "pseudo", cfg, 0, tmp_path / "w.pt", tmp_path / "l.csv")


def test_the_selftrain_table_compares_each_round_with_its_teacher(tmp_path):
    from weakloc.tables import build_tables

    root = tmp_path / "results" / "synthetic"
    for variant, base in {"fused-mean": 0.30, "refined-mean-sam": 0.40, "st1-fused-mean": 0.33,
                          "st1-refined-mean-sam": 0.43}.items():
        write(root / "seed0" / "scores" / f"{variant}.json", score_json(base))
    for folder, auc in (("seed0", 0.8), ("st1/seed0", 0.85)):
        write(root / folder / "detect" / "metrics.json", {"auc": auc, "accuracy": 0.7, "f1": 0.6, "n_images": 24,
                                                          "n_positive": 12, "threshold": 0.5})
    names = build_tables(sorted(root.rglob("*.json")), tmp_path / "tables",
                         {"fusion": {"methods": ["mean"]}, "segmenters": {"use": ["sam"]}})
    assert "ablation_selftrain" in names
    table = pd.read_csv(tmp_path / "tables" / "ablation_selftrain.csv")
    rows = dict(zip(table.iloc[:, 0], table.index, strict=True))
    assert list(rows) == ["round 0: fused (mean)", "round 0: fused (mean) + SAM", "round 1: fused (mean)",
                          "round 1: fused (mean) + SAM"]
    assert json.loads((tmp_path / "tables" / "summary.json").read_text())["detection"]["auc"] == 0.8  # the teacher's
    text = (tmp_path / "tables" / "ablation_selftrain.md").read_text()
    assert "0.850" in text and "0.430" in text
