"""`weakloc localize` on folders: segmenters only where a mask can be drawn, resume after a kill,
the released model when no checkpoint is given."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from factories import photo, random_checkpoint, tiny_model_config
from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.pipeline import Localizer

#: The default study's decision: calibrated per image, a mask only for a "manipulated" verdict.
GATED = {"refine": {"decision": {"rule": "calibrated", "mask_min_score": "verdict"}}}


def _folder(path: Path, n: int, size=(48, 64)) -> Path:
    path.mkdir()
    for i in range(n):
        Image.fromarray(photo(*size, seed=i)).save(path / f"p{i:02d}.png")
    return path


@pytest.fixture(scope="module")
def split_checkpoint(tmp_path_factory):
    """``(checkpoint, folder, scores)``: a tiny random model whose stored operating point is the
    median of its scores on the folder's eight images, so half get the verdict "manipulated"."""
    tmp = tmp_path_factory.mktemp("split")
    folder = _folder(tmp / "in", 8)
    plain = random_checkpoint(tmp / "plain.pt")
    loc = Localizer(plain, tiny_model_config(), segmenters=[])
    scores = {p.stem: loc(p).score for p in sorted(folder.iterdir())}
    assert len(set(scores.values())) == len(scores)
    threshold = float(np.median(list(scores.values())))
    ckpt = random_checkpoint(tmp / "split.pt", {"image_threshold": {"value": threshold, "criterion": "youden_j"}})
    return ckpt, folder, scores


class CountingSlic:
    """SLIC, counting how often it is built and called."""

    built = calls = 0
    build = None  # the real weakloc.segmenters.build_segmenter

    def __init__(self):
        type(self).built += 1
        self.inner = self.build("slic", {})

    def __call__(self, rgb):
        type(self).calls += 1
        return self.inner(rgb)


@pytest.fixture
def counting_slic(monkeypatch):
    import weakloc.segmenters

    CountingSlic.built = CountingSlic.calls = 0
    CountingSlic.build = staticmethod(weakloc.segmenters.build_segmenter)
    monkeypatch.setattr("weakloc.segmenters.build_segmenter", lambda name, settings: CountingSlic())
    return CountingSlic


# --------------------------------------------------------------------------- segmenters only where a mask is drawn

def test_segmenters_run_only_on_images_that_can_get_a_mask_and_masks_scores_verdicts_stay(split_checkpoint,
                                                                                           counting_slic):
    ckpt, folder, scores = split_checkpoint
    images = sorted(folder.iterdir())
    lazy = Localizer(ckpt, tiny_model_config(**GATED), segmenters=["slic"])
    eager = Localizer(ckpt, tiny_model_config(**GATED, localize={"regions": "all"}), segmenters=["slic"])
    lazy_results = [r for _, r, _ in lazy.localize_many(images)]  # the pipelined path
    manipulated = sum(r.verdict == "manipulated" for r in lazy_results)
    assert manipulated == 4 and counting_slic.calls == 4  # segmented: the four "manipulated" images only
    for path, lz in zip(images, lazy_results, strict=True):
        ez = eager(path)
        assert (lz.score, lz.verdict) == (ez.score, ez.verdict) and lz.score == pytest.approx(scores[path.stem])
        np.testing.assert_array_equal(lz.mask, ez.mask)
        assert lz.segmented == (lz.verdict == "manipulated") and ez.segmented
        if lz.verdict == "authentic":  # empty mask; the map drawn without region evidence, below 0.5
            assert not lz.mask.any() and lz.prob.max() <= 0.5
        else:
            np.testing.assert_array_equal(lz.prob, ez.prob)
    assert counting_slic.calls == 4 + 8


def test_a_folder_of_authentic_verdicts_never_builds_the_segmenters(split_checkpoint, counting_slic, tmp_path):
    _, folder, _ = split_checkpoint
    ckpt = random_checkpoint(tmp_path / "strict.pt", {"image_threshold": {"value": 0.9999, "criterion": "youden_j"}})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(GATED))
    out = tmp_path / "out"
    assert main(["localize", str(folder), "--checkpoint", str(ckpt), "--out", str(out), "--segmenter", "slic",
                 "--config", str(cfg)]) == 0
    assert counting_slic.built == 0 and counting_slic.calls == 0  # SAM would not even be loaded
    timing = json.loads((out / "run.json").read_text())["timing"]
    assert (timing["images_computed"], timing["images_segmented"]) == (8, 0)
    assert set(timing["seconds_per_image"]) == {"read", "detect", "segment", "refine", "write"}
    assert "segmented 0 of 8" in (out / "index.html").read_text()


# --------------------------------------------------------------------------- resume

def _outputs(out: Path) -> dict[str, bytes]:
    """Every file of a localize folder but run.json and index.html (which carry the run's own timings)."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if p.is_file() and p.name not in ("run.json", "index.html")}


def _run_json(out: Path) -> dict:
    run = json.loads((out / "run.json").read_text())
    run.pop("timing")
    return run


def test_a_rerun_skips_what_is_done_and_recomputes_what_changed(split_checkpoint, tmp_path, capsys, monkeypatch):
    ckpt, src, _ = split_checkpoint
    folder = tmp_path / "in"
    folder.mkdir()
    for p in src.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    detected = []
    real = Localizer.detect
    monkeypatch.setattr(Localizer, "detect", lambda self, *a, **k: detected.append(1) or real(self, *a, **k))
    out = tmp_path / "out"
    args = ["localize", str(folder), "--checkpoint", str(ckpt), "--out", str(out), "--segmenter", "slic"]
    assert main(args) == 0
    first, first_run = _outputs(out), _run_json(out)
    assert len(detected) == 8

    def rerun(*extra):
        detected.clear()
        capsys.readouterr()
        assert main(args + list(extra)) == 0
        return len(detected), capsys.readouterr().err

    n, err = rerun()
    assert n == 0 and "8 of 8 images already done" in err
    assert _outputs(out) == first and _run_json(out) == first_run
    assert json.loads((out / "run.json").read_text())["timing"]["images_resumed"] == 8

    Image.fromarray(photo(48, 64, seed=99)).save(folder / "p03.png")  # a changed image
    (out / "p05_overlay.jpg").write_bytes(b"damaged")                  # a damaged output
    n, err = rerun()
    assert n == 2 and "6 of 8 images already done" in err
    assert (out / "p05_overlay.jpg").read_bytes() == first["p05_overlay.jpg"]
    assert (out / "p03_photo.jpg").read_bytes() != first["p03_photo.jpg"]

    assert rerun("--segment-max-side", "32")[0] == 8  # a changed setting recomputes every image
    assert rerun("--segment-max-side", "32")[0] == 0
    assert rerun("--segment-max-side", "32", "--force")[0] == 8


def _localize_cmd(folder: Path, ckpt: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "weakloc.cli", "localize", str(folder), "--checkpoint", str(ckpt),
            "--out", str(out), "--segmenter", "slic", "--threads", "1"]


def test_sigkill_at_random_moments_then_rerun_gives_the_bytes_of_an_uninterrupted_run(split_checkpoint, tmp_path):
    ckpt, _, _ = split_checkpoint
    folder = _folder(tmp_path / "in", 24, size=(96, 128))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    clean = tmp_path / "clean"
    subprocess.run(_localize_cmd(folder, ckpt, clean), env=env, check=True, capture_output=True)
    out = tmp_path / "out"
    rng = np.random.default_rng(0)
    kills = 0
    for want in (3, 9, 15):  # killed after about that many records, a random fraction of an image later
        proc = subprocess.Popen(_localize_cmd(folder, ckpt, out), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        records = out / ".weakloc"
        while proc.poll() is None and (not records.is_dir() or len(list(records.glob("*.json"))) < want):
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0, 0.3)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    subprocess.run(_localize_cmd(folder, ckpt, out), env=env, check=True, capture_output=True)
    assert _outputs(out) == _outputs(clean)
    assert _run_json(out) | {"inputs": None} == _run_json(clean) | {"inputs": None}
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [r["id"] for r in rows] == [f"p{i:02d}" for i in range(24)]


# --------------------------------------------------------------------------- the released model

def test_localize_without_a_checkpoint_uses_the_released_model(tmp_path):
    img = tmp_path / "a.jpg"
    Image.fromarray(photo(64, 80, 3)).save(img, quality=90)
    out = tmp_path / "out"
    assert main(["localize", str(img), "--out", str(out), "--no-refine"]) == 0
    run = json.loads((out / "run.json").read_text())
    from weakloc.release import RELEASED, released_checkpoint

    assert run["checkpoint"]["release"]["sha256"] == RELEASED["sha256"]
    assert Path(run["checkpoint"]["path"]) == released_checkpoint()
    assert released_checkpoint().stat().st_size <= 5 * 2**20
    assert "the released model" in (out / "index.html").read_text()
    assert Localizer(segmenters=[])(img).score == pytest.approx(float(next(csv.DictReader(open(out / "scores.csv")))
                                                                      ["score"]), abs=1e-6)


def test_a_tampered_released_model_is_refused(monkeypatch):
    from weakloc import release

    monkeypatch.setitem(release.RELEASED, "sha256", "0" * 64)
    with pytest.raises(WeaklocError, match=r"wcbnet.*sha256 .* is not the released model's"):
        Localizer(segmenters=[])
