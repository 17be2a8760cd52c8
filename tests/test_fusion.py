"""Fusion of block maps (METHOD.md step 4) on inputs whose answer is known."""

import numpy as np
import pytest

from weakloc.errors import WeaklocError
from weakloc.fusion import FUSION_METHODS, fuse, fuse_with_config


def constant_maps(values, shape=(12, 20)):
    return np.stack([np.full(shape, v, dtype=np.float32) for v in values])


def test_mean_and_max_of_constant_maps():
    maps = constant_maps([0.2, 0.4, 0.9])
    np.testing.assert_allclose(fuse(maps, "mean"), 0.5, atol=1e-6)
    np.testing.assert_allclose(fuse(maps, "max"), 0.9, atol=1e-6)


def test_attention_one_hot_weights_pick_that_block():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 17, 23)).astype(np.float32)
    for b in range(4):
        w = np.eye(4)[b]
        np.testing.assert_allclose(fuse(maps, "attention", weights=w), maps[b], atol=1e-6)


def test_attention_weights_are_normalised():
    maps = constant_maps([0.0, 1.0])
    # weights 1 and 3 -> 3/4 of the second map, whatever their sum
    np.testing.assert_allclose(fuse(maps, "attention", weights=[1.0, 3.0]), 0.75, atol=1e-6)
    np.testing.assert_allclose(fuse(maps, "attention", weights=[0.25, 0.75]), 0.75, atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (5, 3), (1, 1)])
@pytest.mark.parametrize("wavelet,level", [("haar", 2), ("db2", 3), ("haar", 10)])
def test_wavelet_of_identical_maps_is_the_map(shape, wavelet, level):
    m = np.random.default_rng(1).random(shape).astype(np.float32)
    out = fuse(np.stack([m, m, m]), "wavelet", wavelet=wavelet, level=level)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, m, atol=1e-5)


def test_wavelet_keeps_the_sharper_maps_detail():
    # A fine checkerboard (all its energy in level-1 details) fused with a flat zero map: the
    # approximation is averaged but the checkerboard's details win, so its contrast survives,
    # while mean fusion halves it.
    yy, xx = np.mgrid[0:16, 0:16]
    board = np.where((yy + xx) % 2 == 0, 0.75, 0.25).astype(np.float32)
    maps = np.stack([board, np.zeros_like(board)])
    wav = fuse(maps, "wavelet", wavelet="haar", level=1)
    mean = fuse(maps, "mean")
    assert np.ptp(wav) == pytest.approx(0.5, abs=1e-6)
    assert np.ptp(mean) == pytest.approx(0.25, abs=1e-6)
    np.testing.assert_allclose(wav.mean(), 0.25, atol=1e-6)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_every_method_returns_a_map_in_range(method):
    maps = np.random.default_rng(2).random((3, 31, 40)).astype(np.float32)
    out = fuse(maps, method, weights=[0.2, 0.5, 0.3])
    assert out.shape == (31, 40) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_fuse_with_config_reads_the_wavelet_settings():
    m = np.random.default_rng(3).random((20, 20)).astype(np.float32)
    cfg = {"fusion": {"wavelet": {"name": "db2", "level": 1}}}
    np.testing.assert_allclose(fuse_with_config(np.stack([m, m]), "wavelet", None, cfg), m, atol=1e-5)


def test_bad_input_raises_one_line_errors():
    maps = constant_maps([0.1, 0.2])
    with pytest.raises(WeaklocError, match="needs the image's block weights"):
        fuse(maps, "attention")
    with pytest.raises(WeaklocError, match="3 block weights for 2"):
        fuse(maps, "attention", weights=[1, 1, 1])
    with pytest.raises(WeaklocError, match="unknown method 'median'"):
        fuse(maps, "median")
    with pytest.raises(WeaklocError, match=r"shape \(B, H, W\)"):
        fuse(np.zeros((4, 4)), "mean")
    with pytest.raises(WeaklocError, match="unknown PyWavelets wavelet"):
        fuse(maps, "wavelet", wavelet="nope")
