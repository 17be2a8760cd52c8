"""WCBnet: weighted convolutional blocks over the signed error level (METHOD.md step 2).

[paper] WCBnet passes the SEL through hierarchical convolution blocks; the blocks' features
are weighted by self-attention across blocks (a "cross-block attention module", about +2.3%
parameters) and fused for the image-level decision.

[ours] The layer-level design below is a reconstruction, not the authors' code:

- An optional stem (``model.stem_stride`` s in 1, 2, 4, 8; default 4): an ``s x s``
  convolution with stride s over non-overlapping patches, which tile the 8x8 JPEG blocks
  exactly. It makes the network about 13x cheaper than full-resolution blocks at 256 px
  and learned as well in our tests (docs/detector.md).
- B blocks (``model.widths``, one width per block). Block 1 runs at the stem's resolution;
  every later block starts with a stride-2 convolution, so block b works at
  ``1 / (s * 2**(b-1))`` of the input size. Each block is ``model.convs_per_block`` 3x3 convolutions, each followed by
  BatchNorm and ReLU (a normalisation layer right after the first convolution makes the SEL
  scale uncritical, METHOD.md). Stride-2 steps keep the 8x8 JPEG grid phase of the input:
  block 4 sees one cell per JPEG block.
- Each block b has a 1x1 convolution giving a one-channel **score map** ``S_b`` (logits) at
  its own resolution, pooled to one block score ``s_b`` (``model.pooling``: ``topk`` = mean
  of the top ``model.topk_fraction`` of the map's values (default), ``mean`` or ``max``).
- The **cross-block attention** summarises each block's features by a token (global mean of
  ``F_b``, a linear projection to ``model.token_dim``, plus a learned per-block embedding),
  runs one single-head pre-norm self-attention layer over the B tokens and maps each token
  to a scalar; a softmax over the blocks gives per-image **block weights** ``w`` (sum 1).
- Image logit = ``sum_b w_b * s_b``.

The network is fully convolutional: any ``H, W >= 1`` is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from weakloc.config import Section
from weakloc.errors import WeaklocError
from weakloc.io import atomic_path

CHECKPOINT_FORMAT = "weakloc-wcbnet"
CHECKPOINT_VERSION = 1


@dataclass
class WCBnetOutput:
    """What one forward pass returns (N images, B blocks).

    Attributes:
        logit: ``(N,)`` image-level manipulation logit (``sigmoid`` gives the probability).
        block_logits: ``(N, B)`` pooled score ``s_b`` of each block (a logit).
        score_maps: B tensors ``(N, 1, H_b, W_b)``: each block's score map (logits) at its own
            resolution, ``H_b = ceil(H / (s * 2**b))`` for b = 0..B-1 (s = ``stem_stride``;
            each halving rounds up).
        block_weights: ``(N, B)`` cross-block attention weights, each row sums to 1.
        features: B tensors ``(N, C_b, H_b, W_b)``: each block's features (for Grad-CAM).
    """

    logit: torch.Tensor
    block_logits: torch.Tensor
    score_maps: list[torch.Tensor]
    block_weights: torch.Tensor
    features: list[torch.Tensor]


@dataclass(frozen=True)
class ModelSettings(Section):
    """The ``model`` config section (see the schema for each key)."""

    SECTION = "model"

    widths: list[int]
    convs_per_block: int
    stem_stride: int
    score_context: bool
    input_norm: bool
    token_dim: int
    pooling: str
    topk_fraction: float
    backbone: str


class ConvBlock(nn.Module):
    """``n_convs`` x (3x3 conv, BatchNorm, ReLU); the first conv has stride 2 if ``downsample``."""

    def __init__(self, in_channels: int, out_channels: int, n_convs: int, downsample: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            stride = 2 if (downsample and i == 0) else 1
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, stride, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CrossBlockAttention(nn.Module):
    """Self-attention over one token per block, giving per-image block weights.

    Input: B feature maps ``(N, C_b, H_b, W_b)``. Output: ``(N, B)`` weights (softmax over
    blocks, rows sum to 1).
    """

    def __init__(self, widths: list[int], token_dim: int) -> None:
        super().__init__()
        self.token_dim = token_dim
        self.project = nn.ModuleList(nn.Linear(c, token_dim) for c in widths)
        self.block_embedding = nn.Parameter(torch.zeros(len(widths), token_dim))
        self.norm = nn.LayerNorm(token_dim)
        self.qkv = nn.Linear(token_dim, 3 * token_dim)
        self.out = nn.Linear(token_dim, token_dim)
        self.weight_head = nn.Linear(token_dim, 1)
        nn.init.normal_(self.block_embedding, std=0.02)

    def tokens(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``(N, B, token_dim)`` block tokens: projected global means of the features."""
        toks = [proj(f.float().mean(dim=(2, 3))) for proj, f in zip(self.project, features, strict=True)]
        return torch.stack(toks, dim=1) + self.block_embedding

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        tok = self.tokens(features)
        q, k, v = self.qkv(self.norm(tok)).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.token_dim), dim=-1)
        tok = tok + self.out(attn @ v)
        return torch.softmax(self.weight_head(tok).squeeze(-1), dim=-1)


def pool_score_map(score_map: torch.Tensor, pooling: str, topk_fraction: float) -> torch.Tensor:
    """Pool ``(N, 1, H, W)`` score maps to ``(N,)`` scores.

    ``topk``: mean of the ``max(1, round(topk_fraction * H * W))`` largest values;
    ``mean``: mean; ``max``: maximum.
    """
    flat = score_map.flatten(1)
    if pooling == "mean":
        return flat.mean(dim=1)
    if pooling == "max":
        return flat.amax(dim=1)
    if pooling == "topk":
        k = max(1, int(round(topk_fraction * flat.shape[1])))
        return flat.topk(k, dim=1).values.mean(dim=1)
    raise WeaklocError(f"key model.pooling: unknown pooling {pooling!r} (choose topk, mean or max)")


class WCBnet(nn.Module):
    """The WCBnet detector (see the module docstring for the design).

    Args:
        in_channels: SEL channels, ``3 * len(sel.qualities)``.
        settings: the ``model`` config section (:class:`ModelSettings`), whose keys are:

        widths: channel width of each block; B = ``len(widths)``.
        token_dim: width of the block tokens of the cross-block attention.
        pooling: ``topk`` | ``mean`` | ``max``: how a score map becomes a block score.
        topk_fraction: fraction of a score map's values averaged by ``topk`` pooling.
        convs_per_block: 3x3 convolutions per block.
        stem_stride: 1 = block 1 reads the SEL at full resolution; 2, 4 or 8 = a stem of
            non-overlapping ``s x s`` patches (a ``s x s`` convolution with stride ``s``, aligned
            with the 8x8 JPEG grid) comes first, so block b works at ``1 / (s * 2**(b-1))``.
        score_context: the 1x1 score head also sees each position's features minus the
            image's mean features, so a score can say "unlike the rest of this image".
        input_norm: divide each image's SEL channels by their root mean square first, so
            the network sees error levels relative to the image's own (which depend on its
            content and its last JPEG quality) rather than absolute ones.
    """

    def __init__(self, in_channels: int, settings: ModelSettings) -> None:
        super().__init__()
        widths, token_dim, pooling = settings.widths, int(settings.token_dim), settings.pooling
        convs_per_block, stem_stride = int(settings.convs_per_block), int(settings.stem_stride)
        self.in_channels = int(in_channels)
        self.widths = [int(w) for w in widths]
        self.pooling = pooling
        self.topk_fraction = float(settings.topk_fraction)
        self.stem_stride = int(stem_stride)
        if self.stem_stride > 1:
            # non-overlapping s x s patches; 8 % s == 0, so patches never straddle a JPEG block edge
            self.stem = nn.Sequential(
                nn.Conv2d(self.in_channels, self.widths[0], self.stem_stride, self.stem_stride, bias=False),
                nn.BatchNorm2d(self.widths[0]), nn.ReLU(inplace=True))
            chans = [self.widths[0]] + self.widths
        else:
            self.stem = nn.Identity()
            chans = [self.in_channels] + self.widths
        self.blocks = nn.ModuleList(
            ConvBlock(chans[b], chans[b + 1], convs_per_block, downsample=b > 0) for b in range(len(widths))
        )
        self.score_context = bool(settings.score_context)
        self.input_norm = bool(settings.input_norm)
        head_in = 2 if self.score_context else 1
        self.score_heads = nn.ModuleList(nn.Conv2d(head_in * w, 1, 1) for w in self.widths)
        self.attention = CrossBlockAttention(self.widths, token_dim)

    @property
    def n_blocks(self) -> int:
        return len(self.widths)

    def score_map(self, b: int, features: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
        """Block ``b``'s score map ``(N, 1, H_b, W_b)`` (float32 logits) from its features.

        With ``score_context`` the head also sees ``features - mean``; ``mean`` ``(N, C_b, 1, 1)``
        defaults to the features' own spatial mean (the whole image when ``features`` covers
        it; a tiled caller passes the whole image's mean).
        """
        h_in = features
        if self.score_context:  # each position against the image's own mean feature
            if mean is None:
                mean = features.mean(dim=(2, 3), keepdim=True)
            h_in = torch.cat([features, features - mean.to(features.dtype)], dim=1)
        return self.score_heads[b](h_in).float()

    def forward(self, x: torch.Tensor) -> WCBnetOutput:
        """``x``: ``(N, in_channels, H, W)`` float SEL. Returns a :class:`WCBnetOutput`."""
        features: list[torch.Tensor] = []
        score_maps: list[torch.Tensor] = []
        if self.input_norm:  # each image's SEL channels to unit RMS: only relative levels remain
            x = x / torch.sqrt(x.float().pow(2).mean(dim=(2, 3), keepdim=True) + 1e-6).to(x.dtype)
        s = self.stem_stride
        if s > 1 and (x.shape[-2] % s or x.shape[-1] % s):
            x = F.pad(x, (0, -x.shape[-1] % s, 0, -x.shape[-2] % s))  # zero SEL at the end: grid kept
        h = self.stem(x)
        for b, block in enumerate(self.blocks):
            h = block(h)
            features.append(h)
            score_maps.append(self.score_map(b, h))
        block_logits = torch.stack(
            [pool_score_map(s, self.pooling, self.topk_fraction) for s in score_maps], dim=1
        )
        weights = self.attention(features)
        logit = (weights * block_logits).sum(dim=1)
        return WCBnetOutput(logit=logit, block_logits=block_logits, score_maps=score_maps,
                            block_weights=weights, features=features)


def model_sections(config: dict) -> dict:
    """The ``sel`` and ``model`` sections of a validated config (what a checkpoint records)."""
    return {"sel": dict(config["sel"]), "model": dict(config["model"])}


def build_wcbnet(config: dict) -> WCBnet:
    """A randomly initialised WCBnet from a config's ``sel`` and ``model`` sections.

    A key the ``model`` section lacks (an old checkpoint's config) takes the schema's default.
    """
    return WCBnet(3 * len(config["sel"]["qualities"]), ModelSettings.from_section(config["model"]))


def attention_parameter_share(model: WCBnet) -> float:
    """Parameters of the cross-block attention module as a fraction of all parameters."""
    total = sum(p.numel() for p in model.parameters())
    attn = sum(p.numel() for p in model.attention.parameters())
    return attn / total


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _plain(value):
    """Check that ``value`` holds only types ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"checkpoint metadata may hold only plain types and tensors, got {type(value).__name__}")


def save_checkpoint(path: str | Path, model: WCBnet, config: dict, extra: dict | None = None) -> None:
    """Write ``model``'s weights with the ``sel``/``model`` config sections and ``extra`` atomically.

    ``extra`` holds plain values (``epoch``, ``val_auc``, ...) that :func:`load_checkpoint`
    returns in ``meta``; ``epoch`` and ``val_auc`` default to None when absent.
    """
    meta = {"epoch": None, "val_auc": None}
    meta.update(_plain(dict(extra or {})))
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": _plain(model_sections(config)),
        "meta": meta,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    # saved through a file object: torch then names the archive's inner folder "archive"
    # rather than after the temporary file, so equal weights give byte-identical files (DVC)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[WCBnet, dict]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns ``(model in eval mode, meta)``; ``meta`` has ``config`` (the ``sel`` and ``model``
    sections, defaults filled), ``epoch``, ``val_auc`` and whatever ``extra`` held.
    Raises :class:`WeaklocError` naming the file when it is missing, not a checkpoint, or
    its weights do not match the architecture its config describes.
    """
    from weakloc.config import ConfigError, validate_config

    path = Path(path)
    if not path.is_file():
        raise WeaklocError(f"{path}: checkpoint not found (train a model first)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise WeaklocError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeaklocError(f"{path}: not a WCBnet checkpoint written by weakloc")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise WeaklocError(f"{path}: checkpoint version {payload.get('version')} is not supported "
                           f"(expected {CHECKPOINT_VERSION})")
    try:
        config = validate_config(dict(payload["config"]), source=f"{path} (stored config)")
        model = build_wcbnet(config)
    except (ConfigError, KeyError, TypeError) as exc:
        raise WeaklocError(f"{path}: stored configuration is invalid ({exc})") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise WeaklocError(f"{path}: weights do not match the WCBnet architecture in its config ({detail})") from None
    model.to(map_location)
    model.eval()
    meta = dict(payload.get("meta", {}))
    meta["config"] = model_sections(config)
    return model, meta
