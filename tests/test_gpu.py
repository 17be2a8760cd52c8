"""The GPU path of training and inference: CUDA, autocast, GradScaler, DataLoader workers.

The ``num_workers > 0`` tests run on the CPU too (here). Every test marked ``cuda`` needs a
CUDA device and is skipped without one, with that reason: none of this project's machines had
a GPU when they were written, so they have not run yet (docs/cluster.md, "The GPU path").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from factories import make_toy_dataset, tiny_config
from weakloc.errors import WeaklocError
from weakloc.runtime import autocast, autocast_dtype, resolve_device
from weakloc.training import train_wcbnet

HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))


def weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# ------------------------------------------------------------------ everywhere (CPU)

def test_workers_give_the_same_model_as_the_main_process(toy, tmp_path):
    """num_workers = 2 (forked DataLoader workers) trains bit-identically to num_workers = 0."""
    for name, workers, cache in (("main", 0, 8), ("workers", 2, 8), ("workers_nocache", 2, 0)):
        train_wcbnet(toy, tiny_config(epochs=2, num_workers=workers, sel_cache_gb=cache), 0,
                     tmp_path / name / "w.pt", tmp_path / name / "log.csv")
    a = weights(tmp_path / "main" / "w.pt")
    for other in ("workers", "workers_nocache"):
        b = weights(tmp_path / other / "w.pt")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{other}: {k}"
    logs = [pd.read_csv(tmp_path / n / "log.csv") for n in ("main", "workers")]
    assert list(logs[0]["train_loss"]) == list(logs[1]["train_loss"])


def test_cpu_has_no_autocast_and_cuda_without_a_gpu_is_a_config_error():
    assert autocast_dtype(torch.device("cpu")) is None
    with autocast(torch.device("cpu"), None):
        assert not torch.is_autocast_enabled()
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    if not HAS_CUDA:
        with pytest.raises(WeaklocError, match="key train.device: cuda requested but no CUDA device"):
            resolve_device("cuda", "train.device")


# ------------------------------------------------------------------ CUDA only

@cuda
def test_autocast_dtype_on_cuda_is_bf16_where_supported():
    dev = torch.device("cuda")
    dtype = autocast_dtype(dev)
    assert dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    x = torch.randn(8, 8, device=dev)
    with autocast(dev, dtype):
        assert (x @ x).dtype == dtype


@cuda
def test_cuda_training_learns_and_its_checkpoint_runs_on_the_cpu(toy, tmp_path):
    from weakloc.detection import detect

    out = tmp_path / "gpu" / "w.pt"
    summary = train_wcbnet(toy, tiny_config(epochs=6, device="cuda", num_workers=2), 0, out, tmp_path / "log.csv")
    assert summary["best_val_auc"] >= 0.8
    saved = torch.load(out, weights_only=True)["state_dict"]  # no map_location: as saved
    assert all(v.device.type == "cpu" for v in saved.values())  # a GPU-trained checkpoint loads anywhere
    m_gpu = detect(toy, out, "train", tmp_path / "g.csv", tmp_path / "g.json", device="cuda")
    m_cpu = detect(toy, out, "train", tmp_path / "c.csv", tmp_path / "c.json", device="cpu")
    g, c = pd.read_csv(tmp_path / "g.csv"), pd.read_csv(tmp_path / "c.csv")
    assert list(g["id"]) == list(c["id"])
    # bf16/fp16 autocast on the GPU, fp32 on the CPU: the same decisions up to rounding
    assert np.abs(g["score"].to_numpy() - c["score"].to_numpy()).max() < 0.05
    assert m_gpu["auc"] == pytest.approx(m_cpu["auc"], abs=0.05) and m_gpu["auc"] >= 0.8


@cuda
def test_gradscaler_path_with_fp16(toy, tmp_path, monkeypatch):
    """fp16 autocast (GPUs without bf16) goes through GradScaler; force it on any GPU."""
    import weakloc.training as training

    steps = []
    real = torch.amp.GradScaler

    class CountingScaler(real):
        def step(self, optimizer, *args, **kwargs):
            steps.append(self.get_scale())
            return super().step(optimizer, *args, **kwargs)

    saved = []
    real_save = training._save_resume
    monkeypatch.setattr(training, "_save_resume", lambda path, state: (saved.append(state), real_save(path, state)))
    monkeypatch.setattr(training, "autocast_dtype", lambda device: torch.float16)
    monkeypatch.setattr(torch.amp, "GradScaler", CountingScaler)
    summary = train_wcbnet(toy, tiny_config(epochs=4, device="cuda"), 0, tmp_path / "w.pt", tmp_path / "log.csv")
    assert steps, "GradScaler.step was never called"
    log = pd.read_csv(tmp_path / "log.csv")
    assert np.isfinite(log["train_loss"]).all() and log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    assert summary["best_val_auc"] >= 0.7
    assert saved and all(state["scaler"] for state in saved)  # a resumed run continues the loss scale


@cuda
def test_block_maps_on_cuda_match_the_cpu(toy, tmp_path):
    from weakloc.cams import block_maps
    from weakloc.io import read_rgb
    from weakloc.manifest import read_manifest
    from weakloc.wcbnet import load_checkpoint

    out = tmp_path / "w.pt"
    train_wcbnet(toy, tiny_config(epochs=2), 0, out, tmp_path / "log.csv")
    rgb = read_rgb(read_manifest(toy, split="test")["image"].iloc[0])
    for method in ("score", "gradcam"):
        maps = {}
        for dev in ("cpu", "cuda"):
            model, meta = load_checkpoint(out, map_location=dev)
            maps[dev] = block_maps(model, meta, rgb, method)
        assert maps["cuda"].maps.shape == maps["cpu"].maps.shape
        assert np.abs(maps["cuda"].maps - maps["cpu"].maps).max() < 1e-2, method
        assert maps["cuda"].prob == pytest.approx(maps["cpu"].prob, abs=1e-3)
