"""The runtime module: the one device resolver, size batching, full-resolution image logits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.runtime import image_logits, resolve_device, size_batches
from weakloc.wcbnet import build_wcbnet


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_explicit_devices(with_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1", "train.device") == torch.device("cuda", 1)


def test_cuda_without_a_gpu_names_the_key(no_cuda):
    assert resolve_device("cpu", "train.device") == torch.device("cpu")
    with pytest.raises(WeaklocError, match=r"^key segmenters\.sam\.device: cuda requested but no CUDA device "
                                           r"is available \(use auto or cpu\)$"):
        resolve_device("cuda", "segmenters.sam.device")
    with pytest.raises(WeaklocError, match=r"^key train\.device: cuda requested"):
        resolve_device("cuda:0", "train.device")
    with pytest.raises(WeaklocError, match=r"^device: cuda requested"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["gpu", "CUDA", "mps", "", "cuda:", "cpu:0", "cuda:x"])
def test_unknown_device_names_are_refused_with_the_choices(with_cuda, name):
    with pytest.raises(WeaklocError, match=r"^key segmenters\.deeplab\.device: unknown device .* "
                                           r"\(choose auto, cpu or cuda\)$"):
        resolve_device(name, "segmenters.deeplab.device")


def test_callers_use_the_one_resolver(no_cuda, tmp_path):
    from weakloc.detection import score_images
    from weakloc.pipeline import Localizer

    with pytest.raises(WeaklocError, match=r"^key train\.device: cuda requested"):
        score_images(torch.nn.Identity(), {"config": {"sel": {}}}, [], device="cuda")
    with pytest.raises(WeaklocError, match=r"^device: cuda requested"):
        Localizer(tmp_path / "missing.pt", device="cuda")  # the device is checked before the checkpoint
    with pytest.raises(WeaklocError, match=r"^device: unknown device 'gpu'"):
        Localizer(tmp_path / "missing.pt", device="gpu")


def test_detection_does_not_import_training():
    code = "import sys, weakloc.detection; print('weakloc.training' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_size_batches_groups_equal_sizes_in_input_order():
    shapes = [(2, 3), (4, 5), (2, 3), (2, 3), (4, 5), (3, 2), (2, 3)]
    batches = size_batches(shapes, 2)
    assert batches == [[0, 2], [1, 4], [3, 6], [5]]
    assert sorted(i for b in batches for i in b) == list(range(len(shapes)))
    assert all(len({shapes[i] for i in b}) == 1 for b in batches)
    assert size_batches(shapes, 10) == [[0, 2, 3, 6], [1, 4], [5]]
    assert size_batches([], 4) == []


def test_image_logits_keep_input_order_and_match_one_image_at_a_time():
    torch.manual_seed(0)
    cfg = validate_config({"sel": {"qualities": [90]}, "model": {"widths": [8, 16], "token_dim": 8}})
    model = build_wcbnet(cfg)
    rng = np.random.default_rng(0)
    sizes = [(32, 48), (48, 32), (32, 48), (32, 32), (32, 48)]
    sels = [rng.normal(size=(3, h, w)).astype(np.float32) for h, w in sizes]
    batched = image_logits(model, sels, torch.device("cpu"), batch_size=2)
    single = np.array([image_logits(model, [s], torch.device("cpu"), batch_size=1)[0] for s in sels])
    assert batched.shape == (5,) and batched.dtype == np.float64
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    assert len(np.unique(np.round(single, 6))) == 5  # distinct images, so a reordering would show
    assert not model.training
