"""WCBnet: output shapes on odd sizes, block weights, pooling, checkpoints."""

from __future__ import annotations

import pytest
import torch

from weakloc.config import validate_config
from weakloc.errors import WeaklocError
from weakloc.wcbnet import (
    ModelSettings,
    WCBnet,
    WCBnetOutput,
    attention_parameter_share,
    build_wcbnet,
    load_checkpoint,
    parameter_count,
    pool_score_map,
    save_checkpoint,
)


def small_config(**model):
    m = {"widths": [4, 8, 8], "token_dim": 8}
    m.update(model)
    return validate_config({"sel": {"qualities": [90, 70]}, "model": m})


@pytest.mark.parametrize("stem", [1, 4])
@pytest.mark.parametrize("h,w", [(37, 53), (8, 8), (1, 5), (64, 33)])
def test_output_shapes_and_dtypes_for_any_size(h, w, stem):
    torch.manual_seed(0)
    model = build_wcbnet(small_config(stem_stride=stem)).eval()
    assert model.in_channels == 6 and model.n_blocks == 3
    with torch.no_grad():
        out = model(torch.randn(2, 6, h, w))
    assert isinstance(out, WCBnetOutput)
    assert out.logit.shape == (2,) and out.block_logits.shape == (2, 3) and out.block_weights.shape == (2, 3)
    for b, (s, f, c) in enumerate(zip(out.score_maps, out.features, [4, 8, 8], strict=True)):
        hb, wb = -(-h // stem), -(-w // stem)
        for _ in range(b):
            hb, wb = (hb + 1) // 2, (wb + 1) // 2
        assert s.shape == (2, 1, hb, wb) and s.dtype == torch.float32
        assert f.shape == (2, c, hb, wb)
    assert torch.isfinite(out.logit).all()


@pytest.mark.parametrize("stem", [2, 4, 8])
def test_stem_options_keep_any_size_and_the_grid(stem):
    torch.manual_seed(0)
    model = build_wcbnet(small_config(stem_stride=stem, score_context=True, input_norm=True)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 6, 37, 53))
        assert out.score_maps[0].shape == (1, 1, -(-37 // stem), -(-53 // stem))
        assert model(torch.randn(1, 6, 1, 1)).logit.shape == (1,)
        # a stem patch never mixes pixels of two JPEG blocks: changing one 8x8 block changes
        # only the stem cells inside it
        x = torch.randn(1, 6, 32, 32)
        y = x.clone()
        y[..., 8:16, 16:24] += 1.0
        a, b = model.stem(x), model.stem(y)
        changed = (a - b).abs().sum(1)[0] > 0
        rows, cols = torch.nonzero(changed, as_tuple=True)
        assert rows.min() * stem >= 8 and (rows.max() + 1) * stem <= 16
        assert cols.min() * stem >= 16 and (cols.max() + 1) * stem <= 24


def test_input_norm_makes_the_output_invariant_to_the_sel_scale():
    torch.manual_seed(0)
    model = build_wcbnet(small_config(input_norm=True)).eval()
    x = torch.randn(2, 6, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logit, model(3.0 * x).logit, rtol=1e-4, atol=1e-4)


def test_block_weights_sum_to_one_and_logit_is_their_weighted_block_scores():
    torch.manual_seed(1)
    model = build_wcbnet(small_config()).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 6, 40, 40))
    torch.testing.assert_close(out.block_weights.sum(1), torch.ones(3))
    assert (out.block_weights > 0).all()
    torch.testing.assert_close(out.logit, (out.block_weights * out.block_logits).sum(1))


def test_block_weights_depend_on_the_image():
    torch.manual_seed(2)
    model = build_wcbnet(small_config()).eval()
    with torch.no_grad():
        w = model(torch.randn(2, 6, 32, 32) * torch.tensor([0.1, 10.0])[:, None, None, None]).block_weights
    assert not torch.allclose(w[0], w[1])


def test_pooling_definitions():
    s = torch.arange(100, dtype=torch.float32).reshape(1, 1, 10, 10)
    assert pool_score_map(s, "mean", 0.1).item() == pytest.approx(49.5)
    assert pool_score_map(s, "max", 0.1).item() == 99
    assert pool_score_map(s, "topk", 0.1).item() == pytest.approx(sum(range(90, 100)) / 10)
    assert pool_score_map(s[..., :1, :1], "topk", 0.1).item() == 0  # k is at least 1
    with pytest.raises(WeaklocError):
        WCBnet(3, ModelSettings.from_section({"widths": [4], "token_dim": 4, "pooling": "median"}))


def test_attention_share_is_small_and_counted():
    model = build_wcbnet(validate_config({}))
    share = attention_parameter_share(model)
    assert 0.0 < share < 0.2
    # the attention module counted by hand from its layers: one projection per block, the block
    # embedding, LayerNorm, the qkv and output projections, the weight head
    cfg = validate_config({})["model"]
    widths, t = cfg["widths"], cfg["token_dim"]
    n_attn = sum(c * t + t for c in widths) + len(widths) * t + 2 * t + (3 * t * t + 3 * t) + (t * t + t) + (t + 1)
    assert share == pytest.approx(n_attn / parameter_count(model))


def test_a_model_section_lacking_keys_gets_the_schema_defaults():
    # an old checkpoint's model section without stem_stride / score_context: the schema's 4 and true
    model = build_wcbnet({"sel": {"qualities": [90]}, "model": {"widths": [4, 8], "token_dim": 8}})
    assert model.stem_stride == 4 and model.score_context is True and model.input_norm is False
    assert model.pooling == "topk" and model.topk_fraction == 0.1 and len(model.blocks[0].body) == 2 * 3
    with pytest.raises(WeaklocError, match="unknown key model.stride"):
        build_wcbnet({"sel": {"qualities": [90]}, "model": {"stride": 4}})
    with pytest.raises(WeaklocError, match="key model.backbone"):
        build_wcbnet({"sel": {"qualities": [90]}, "model": {"backbone": "resnet"}})


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    config = small_config(pooling="max")
    model = build_wcbnet(config)
    with torch.no_grad():  # make BatchNorm running stats non-trivial
        model.train()(torch.randn(4, 6, 24, 24))
    path = tmp_path / "ckpt" / "wcbnet.pt"
    save_checkpoint(path, model, config, {"epoch": 7, "val_auc": 0.83, "seed": 1})
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    assert meta["epoch"] == 7 and meta["val_auc"] == pytest.approx(0.83) and meta["seed"] == 1
    assert meta["config"]["sel"]["qualities"] == [90, 70] and meta["config"]["model"]["pooling"] == "max"
    x = torch.randn(1, 6, 29, 31)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logit, model.eval()(x).logit)
    assert list(tmp_path.joinpath("ckpt").iterdir()) == [path]  # no temporary left behind
    # the same weights and metadata give the same bytes (a DVC-tracked output stays unchanged)
    save_checkpoint(tmp_path / "again.pt", model, config, {"epoch": 7, "val_auc": 0.83, "seed": 1})
    assert (tmp_path / "again.pt").read_bytes() == path.read_bytes()


def test_missing_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(WeaklocError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeaklocError, match=r"bad\.pt: not a readable checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(WeaklocError, match="not a WCBnet checkpoint"):
        load_checkpoint(other)
    good = tmp_path / "good.pt"
    save_checkpoint(good, build_wcbnet(small_config()), small_config(), {"epoch": 1})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(WeaklocError, match="truncated.pt"):
        load_checkpoint(truncated)


def test_mismatched_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "mismatch.pt"
    # weights of a 3-block model stored with the config of a 2-block model
    save_checkpoint(path, build_wcbnet(small_config()), small_config(widths=[4, 8]), {"epoch": 1})
    with pytest.raises(WeaklocError, match=r"mismatch\.pt: weights do not match the WCBnet architecture"):
        load_checkpoint(path)


def test_checkpoint_metadata_must_be_plain(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "x.pt", build_wcbnet(small_config()), small_config(), {"obj": object()})
