"""Where and how the networks run: device choice, mixed precision, CPU threads, batching.

The one device resolver of the package is :func:`resolve_device`: training, detection, the
:class:`weakloc.pipeline.Localizer`, the CAM step and the neural segmenters all call it, so a
setting means the same everywhere (``auto`` -> CUDA when available, else the CPU).
:func:`image_logits` scores full-resolution SELs with a WCBnet, batching images of equal size
(:func:`size_batches`); training uses it for validation, detection for scoring.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from weakloc.errors import WeaklocError

if TYPE_CHECKING:
    from weakloc.wcbnet import WCBnet


# --------------------------------------------------------------------------- devices

def resolve_device(setting: str = "auto", key: str | None = None) -> torch.device:
    """The torch device a ``setting`` names: ``auto`` | ``cpu`` | ``cuda`` (or ``cuda:N``).

    ``auto`` is CUDA when available, else the CPU. ``cuda`` without a CUDA device and an
    unknown name are one-line errors naming the config ``key`` that holds the setting
    (``"key train.device: ..."``; just ``"device: ..."`` when ``key`` is None).
    """
    where = f"key {key}" if key else "device"
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting != "cpu" and not re.fullmatch(r"cuda(:\d+)?", str(setting)):
        raise WeaklocError(f"{where}: unknown device {setting!r} (choose auto, cpu or cuda)")
    if setting != "cpu" and not torch.cuda.is_available():
        raise WeaklocError(f"{where}: cuda requested but no CUDA device is available (use auto or cpu)")
    return torch.device(setting)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA devices that support it, else fp16 on CUDA; None (fp32) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``device`` (a no-op context when ``dtype`` is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def available_threads(reserve: int = 0) -> int:
    """``OMP_NUM_THREADS`` (what a workflow rule's ``threads:`` sets) when set, else the cores this
    process may use less ``reserve`` (kept for another thread of the command), at least 1."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - int(reserve))


def set_threads(threads: int | None) -> int:
    """Set torch's CPU threads: ``threads``, else :func:`available_threads` (``OMP_NUM_THREADS``,
    else every core this process may use).

    The count is fixed by the command, never by the machine's load, so a rerun computes the
    same floating-point reductions and gives the same bytes.
    """
    n = int(threads) if threads else available_threads()
    torch.set_num_threads(n)
    return n


# --------------------------------------------------------------------------- batching

def size_batches(shapes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Group indices of equal ``(H, W)`` into batches of at most ``batch_size`` (input order kept)."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(shapes):
        by_shape.setdefault(tuple(s), []).append(i)
    batches = []
    for idx in by_shape.values():
        batches += [idx[j:j + batch_size] for j in range(0, len(idx), batch_size)]
    return sorted(batches, key=lambda b: b[0])


@torch.no_grad()
def image_logits(model: WCBnet, sels: list[np.ndarray], device: torch.device, batch_size: int = 16,
                 amp: torch.dtype | None = None, progress: str | None = None) -> np.ndarray:
    """``(N,) float64`` image logits of full-resolution SELs (each ``(C, H, W) float32``).

    Images of equal size share a batch; nothing is resized or cropped.
    """
    model.eval()
    out = np.zeros(len(sels), dtype=np.float64)
    batches = size_batches([s.shape[1:] for s in sels], batch_size)
    for batch in tqdm(batches, desc=progress, disable=progress is None, file=sys.stderr, leave=False):
        x = torch.from_numpy(np.stack([sels[i] for i in batch])).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logit = model(x).logit.float()
        out[batch] = logit.cpu().numpy()
    return out
