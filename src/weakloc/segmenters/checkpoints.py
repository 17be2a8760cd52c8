"""Loading the pre-trained weights of the segmenters (their device: :func:`weakloc.runtime.resolve_device`).

Every file goes through ``torch.load(..., map_location="cpu", weights_only=True)``, so a
checkpoint can hold tensors and plain containers but never runs code. Problems become a
one-line :class:`WeaklocError` that names the config key the user should fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from weakloc.errors import WeaklocError


def read_state_dict(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a flat ``{parameter name: tensor}`` state dict.

    Accepts a bare state dict or one wrapped as ``{"state_dict": ...}`` or
    ``{"model": ...}``; a ``module.`` prefix (``DataParallel``) is removed from every name.
    ``key`` is the config key that holds ``path`` and is named in every error.
    """
    path = Path(path)
    if not path.is_file():
        raise WeaklocError(f"{key}: checkpoint file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes make torch.load fail in many ways (struct.error, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise WeaklocError(f"{key}: {path} is not a loadable PyTorch checkpoint ({first})") from None
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeaklocError(f"{key}: {path} does not hold a state dict (a mapping of parameter names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, key: str,
                 what: str, ignore_prefixes: Iterable[str] = ()) -> None:
    """Load ``state`` into ``model`` strictly, or raise one line saying what does not match.

    Parameters whose names start with one of ``ignore_prefixes`` (training-only heads such
    as an auxiliary classifier) are dropped first. ``what`` describes the expected model
    (for example ``"PSPNet-50 with 150 classes"``).
    """
    prefixes = tuple(ignore_prefixes)
    state = {k: v for k, v in state.items() if not (prefixes and k.startswith(prefixes))}
    expected = model.state_dict()
    # BatchNorm's step counter is absent from checkpoints older than PyTorch 0.4.1 and
    # plays no part in inference: take the model's own.
    for k, v in expected.items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            parts.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
        raise WeaklocError(f"{key}: {path} does not fit a {what}: parameters {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
