"""Training WCBnet: learns a toy task, determinism, resume, image labels only, time budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from factories import TINY, kill_epoch, make_toy_dataset, record_opened_files, tiny_config
from weakloc.errors import WeaklocError
from weakloc.training import GRID, balanced_epoch_plan, grid_crop, train_wcbnet


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))


def _weights(path):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return payload["state_dict"]


def test_small_model_learns_the_toy_task_and_detect_scores_the_test_split(toy, tmp_path):
    from weakloc.detection import detect

    out = tmp_path / "ck" / "wcbnet.pt"
    summary = train_wcbnet(toy, tiny_config(epochs=6), 0, out, tmp_path / "log.csv")
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds"]
    assert list(log["epoch"]) == [1, 2, 3, 4, 5, 6] and summary["stop_reason"] == "max_epochs"
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    assert summary["best_val_auc"] >= 0.8
    metrics = detect(toy, out, "train", tmp_path / "scores.csv", tmp_path / "metrics.json", device="cpu")
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == ["id", "label", "score"] and len(scores) == 14
    assert scores["score"].between(0, 1).all()
    assert metrics["auc"] >= 0.8 and metrics["accuracy"] > 0.6  # above chance (0.5)
    meta_auc = torch.load(out, weights_only=True)["meta"]["val_auc"]
    assert meta_auc == pytest.approx(summary["best_val_auc"])


def test_masks_are_never_read(toy, tmp_path, monkeypatch):
    """Image labels only: every file training opens is recorded, and no mask is among them.

    The manifest names mask files that exist and would read fine (a silent read would go
    unnoticed otherwise) and, for half of the images, mask files that do not exist.
    """
    root = tmp_path / "spy"
    (root / "masks").mkdir(parents=True)
    df = pd.read_csv(toy)
    df["image"] = [str(toy.parent / p) for p in df["image"]]
    for i, ident in enumerate(df["id"]):
        if i % 2 == 0:
            (root / "masks" / f"{ident}.png").write_bytes((toy.parent / "masks" / f"{ident}.png").read_bytes())
    df["mask"] = [str(root / "masks" / f"{i}.png") for i in df["id"]]
    df.to_csv(root / "manifest.csv", index=False)
    opened = record_opened_files(monkeypatch)
    summary = train_wcbnet(root / "manifest.csv", tiny_config(epochs=1), 0, tmp_path / "w.pt", tmp_path / "l.csv")
    monkeypatch.undo()
    assert summary["epochs_run"] == 1 and (tmp_path / "w.pt").is_file()
    images = {str(toy.parent / "images" / f"{i}.png") for i in df["id"]}
    assert images & set(opened), "the spy saw no image being read"
    assert not [p for p in opened if str(root / "masks") in p], "training opened a mask file"


def test_fixed_seed_gives_identical_weights_and_another_seed_does_not(toy, tmp_path):
    cfg = tiny_config(epochs=2)
    train_wcbnet(toy, cfg, 3, tmp_path / "a" / "w.pt", tmp_path / "a" / "log.csv")
    train_wcbnet(toy, cfg, 3, tmp_path / "b" / "w.pt", tmp_path / "b" / "log.csv")
    train_wcbnet(toy, cfg, 4, tmp_path / "c" / "w.pt", tmp_path / "c" / "log.csv")
    a, b, c = (_weights(tmp_path / d / "w.pt") for d in "abc")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_sel_memory_cache_changes_nothing_but_speed(toy, tmp_path, capsys):
    train_wcbnet(toy, tiny_config(epochs=2), 0, tmp_path / "a" / "w.pt", tmp_path / "a" / "log.csv")
    assert "caching the training SELs in memory" in capsys.readouterr().err
    train_wcbnet(toy, tiny_config(epochs=2, sel_cache_gb=0), 0, tmp_path / "b" / "w.pt", tmp_path / "b" / "log.csv")
    assert "computed per batch" in capsys.readouterr().err
    a, b = _weights(tmp_path / "a" / "w.pt"), _weights(tmp_path / "b" / "w.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_compact_sel_is_exact_and_one_byte_per_value_when_it_fits(tmp_path):
    from weakloc.sel import scale_error_diff, signed_error_level
    from weakloc.training import compact_sel_of_file

    rng = np.random.default_rng(0)
    smooth = np.asarray(
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((64, 64), Image.BILINEAR))
    harsh = np.zeros((64, 64, 3), np.uint8)
    harsh[30, 30] = 255  # one white pixel: re-encoding at q=5 smears it, a difference of over 127
    for name, rgb, dtype in [("smooth", smooth, np.int8), ("harsh", harsh, np.int16)]:
        Image.fromarray(rgb).save(tmp_path / f"{name}.png")
        compact = compact_sel_of_file(tmp_path / f"{name}.png", [90, 5])
        assert compact.dtype == dtype, name
        np.testing.assert_array_equal(scale_error_diff(compact, 8.0), signed_error_level(rgb, [90, 5], 8.0))


def test_killed_run_resumes_from_the_last_epoch_and_ends_like_an_uninterrupted_one(toy, tmp_path, monkeypatch):
    import weakloc.training as training

    cfg = tiny_config(epochs=4, patience=10)
    full = tmp_path / "full"
    train_wcbnet(toy, cfg, 0, full / "w.pt", full / "log.csv")

    part = tmp_path / "part"
    kill_epoch(monkeypatch, 3)  # killed during epoch 3
    with pytest.raises(KeyboardInterrupt):
        train_wcbnet(toy, cfg, 0, part / "w.pt", part / "log.csv")
    assert len(pd.read_csv(part / "log.csv")) == 2
    assert training.resume_path(part / "w.pt") == part / "resume" / "last.pt"
    assert (part / "resume" / "last.pt").is_file()

    monkeypatch.undo()
    (part / "w.pt").unlink()  # Snakemake deletes declared outputs before a rerun
    (part / "log.csv").unlink()
    summary = train_wcbnet(toy, cfg, 0, part / "w.pt", part / "log.csv")
    assert summary["epochs_run"] == 4
    log_full, log_part = pd.read_csv(full / "log.csv"), pd.read_csv(part / "log.csv")
    cols = ["epoch", "train_loss", "val_loss", "val_auc", "lr"]
    pd.testing.assert_frame_equal(log_full[cols], log_part[cols], rtol=1e-4)
    a, b = _weights(full / "w.pt"), _weights(part / "w.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    last_full = torch.load(full / "resume" / "last.pt", weights_only=True)["model"]
    last_part = torch.load(part / "resume" / "last.pt", weights_only=True)["model"]
    for k in last_full:
        torch.testing.assert_close(last_full[k], last_part[k], rtol=1e-4, atol=1e-5)

    # a finished run run again trains nothing and rewrites its outputs
    (part / "w.pt").unlink()
    again = train_wcbnet(toy, cfg, 0, part / "w.pt", part / "log.csv")
    assert again["epochs_run"] == 4 and (part / "w.pt").is_file()


def test_resume_state_of_another_run_is_not_reused(toy, tmp_path):
    train_wcbnet(toy, tiny_config(epochs=1), 0, tmp_path / "w.pt", tmp_path / "log.csv")
    summary = train_wcbnet(toy, tiny_config(epochs=2, lr=0.02), 0, tmp_path / "w.pt", tmp_path / "log.csv")
    assert summary["epochs_run"] == 2
    assert len(pd.read_csv(tmp_path / "log.csv")) == 2


def test_time_budget_stops_gracefully(toy, tmp_path):
    summary = train_wcbnet(toy, tiny_config(epochs=50, time_budget_minutes=1e-5), 0, tmp_path / "w.pt",
                           tmp_path / "log.csv")
    assert summary["stop_reason"] == "time_budget" and summary["epochs_run"] == 1
    assert (tmp_path / "w.pt").is_file()


def test_early_stopping_on_validation_auc(toy, tmp_path):
    summary = train_wcbnet(toy, tiny_config(epochs=30, patience=2), 0, tmp_path / "w.pt", tmp_path / "log.csv")
    assert summary["stop_reason"] == "early_stop" and summary["epochs_run"] < 30
    log = pd.read_csv(tmp_path / "log.csv")
    auc = log["val_auc"].to_numpy()
    # the run stopped exactly 2 epochs after its last validation-AUC gain
    last_gain = max(i for i in range(len(auc)) if i == 0 or auc[i] > auc[:i].max() + 1e-9)
    assert len(auc) == last_gain + 1 + 2


def test_grid_crop_keeps_the_jpeg_grid_and_pads_small_images():
    rng = np.random.default_rng(0)
    h, w = 100, 120  # 120 % 16 != 0: no flips
    sel = np.arange(h * w, dtype=np.float32).reshape(1, h, w)
    for _ in range(50):
        crop = grid_crop(sel, 48, rng, flip=True)
        y0, x0 = divmod(int(crop[0, 0, 0]), w)
        assert y0 % GRID == 0 and x0 % GRID == 0
        np.testing.assert_array_equal(crop[0], sel[0, y0:y0 + 48, x0:x0 + 48])
    wide = np.arange(32 * 64, dtype=np.float32).reshape(1, 32, 64)  # 64 % 16 == 0: flips allowed
    flipped = [grid_crop(wide, 32, np.random.default_rng(s), flip=True) for s in range(20)]
    assert any(np.array_equal(f[0], wide[0, :, ::-1][:, x:x + 32]) for f in flipped for x in (0, 16, 32))
    small = grid_crop(np.ones((3, 20, 40), np.float32), 32, rng, flip=False)
    assert small.shape == (3, 32, 32)
    assert small[:, :20, :32].min() == 1 and small[:, 20:, :].max() == 0


def test_balanced_epoch_plan_is_balanced_and_depends_only_on_seed_and_epoch():
    labels = np.array([0] * 10 + [1] * 3)
    plan = balanced_epoch_plan(labels, 0, 1)
    rows = [r for r, _ in plan]
    assert len(rows) == 20 and sum(labels[rows]) == 10
    assert set(rows) == set(range(13))
    assert plan == balanced_epoch_plan(labels, 0, 1) and plan != balanced_epoch_plan(labels, 0, 2)


def test_train_split_needs_both_classes(toy, tmp_path):
    df = pd.read_csv(toy)
    df = df[(df["split"] != "train") | (df["label"] == 1)]
    df["image"] = [str(toy.parent / p) for p in df["image"]]
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(WeaklocError, match="both authentic"):
        train_wcbnet(tmp_path / "m.csv", tiny_config(), 0, tmp_path / "w.pt", tmp_path / "l.csv")


def test_cli_train_and_detect(toy, tmp_path):
    import json

    from weakloc.cli import main

    cfg = json.dumps(TINY)
    ck = tmp_path / "seed0" / "wcbnet.pt"
    assert main(["train", "--manifest", str(toy), "--seed", "0", "--out", str(ck), "--log",
                 str(tmp_path / "seed0" / "log.csv"), "--config-json", cfg]) == 0
    assert main(["detect", "--manifest", str(toy), "--split", "test", "--checkpoint", str(ck),
                 "--scores", str(tmp_path / "s.csv"), "--metrics", str(tmp_path / "m.json"),
                 "--config-json", cfg]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"auc", "accuracy", "f1"} <= set(metrics) and metrics["split"] == "test"
    # the default splits: test and holdout (image-level only) together
    df = pd.read_csv(toy)
    df.loc[df.index[df["split"] == "train"][:4], "split"] = "holdout"
    df["image"] = [str(toy.parent / p) for p in df["image"]]
    df["mask"] = [str(toy.parent / p) if p == p and p else "" for p in df["mask"]]
    df.to_csv(tmp_path / "h.csv", index=False)
    assert main(["detect", "--manifest", str(tmp_path / "h.csv"), "--checkpoint", str(ck), "--scores",
                 str(tmp_path / "s2.csv"), "--metrics", str(tmp_path / "m2.json"), "--config-json", cfg]) == 0
    scored = pd.read_csv(tmp_path / "s2.csv")
    assert sorted(scored["id"]) == sorted(df.loc[df["split"].isin(["test", "holdout"]), "id"])
    assert json.loads((tmp_path / "m2.json").read_text())["split"] == "test+holdout"
    assert main(["detect", "--manifest", str(toy), "--checkpoint", str(tmp_path / "none.pt"),
                 "--scores", str(tmp_path / "s.csv"), "--metrics", str(tmp_path / "m.json")]) == 2


def test_changed_data_with_the_same_ids_retrains(tmp_path, capsys):
    """Staleness: other images under the same ids, splits and labels (another synthetic size) are
    another run: training starts over instead of resuming and handing back the old model."""
    root = tmp_path / "data"
    manifest = make_toy_dataset(root)
    ckpt = tmp_path / "w.pt"
    train_wcbnet(manifest, tiny_config(epochs=2), 0, ckpt, tmp_path / "log.csv")
    old = ckpt.read_bytes()
    capsys.readouterr()
    train_wcbnet(manifest, tiny_config(epochs=2), 0, ckpt, tmp_path / "log.csv")  # same data: resumes, same bytes
    assert "resuming after epoch 2" in capsys.readouterr().err and ckpt.read_bytes() == old
    other = make_toy_dataset(tmp_path / "other", seed=1)  # same ids, splits, labels; other pixels
    for f in (root / "images").iterdir():
        f.write_bytes((other.parent / "images" / f.name).read_bytes())
    summary = train_wcbnet(manifest, tiny_config(epochs=2), 0, ckpt, tmp_path / "log.csv")
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "resuming" not in err
    assert summary["epochs_run"] == 2 and ckpt.read_bytes() != old


def test_default_training_length_is_epochs_not_a_clock_and_a_budget_is_recorded(toy, tmp_path):
    """The same seed gives the same bytes whatever the load: no default stops on a timer; an
    opt-in budget is written into the checkpoint so the tables can flag it."""
    from weakloc.config import load_config
    from weakloc.wcbnet import load_checkpoint

    assert load_config(None)["train"]["time_budget_minutes"] is None
    import yaml
    assert yaml.safe_load(open(Path(__file__).parents[1] / "config.yaml"))["train"].get("time_budget_minutes") is None
    train_wcbnet(toy, tiny_config(epochs=1), 0, tmp_path / "a.pt", tmp_path / "a.csv")
    assert load_checkpoint(tmp_path / "a.pt")[1]["stop_reason"] == "max_epochs"
    train_wcbnet(toy, tiny_config(epochs=50, time_budget_minutes=1e-5), 0, tmp_path / "b.pt", tmp_path / "b.csv")
    meta = load_checkpoint(tmp_path / "b.pt")[1]
    assert meta["stop_reason"] == "time_budget" and meta["time_budget_minutes"] == 1e-5


def test_threads_follow_the_rule(monkeypatch):
    """Training takes the rule's `threads` (OMP_NUM_THREADS), not every core."""
    from weakloc.runtime import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads(None) == 1 and torch.get_num_threads() == 1
        assert set_threads(2) == 2
    finally:
        torch.set_num_threads(before)
