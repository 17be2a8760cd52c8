"""Training WCBnet with image-level labels only (METHOD.md step 2).

[paper] Training uses image-level labels only; masks are never used for training.
This module reads only the ``image`` and ``label`` columns of the manifest: the ``mask``
column is never opened (a test makes the mask files unreadable to prove it).

[ours] The recipe below is a reconstruction, tuned on the synthetic default dataset:

- **Loss.** ``BCE(image logit, y) + train.block_loss_weight * mean_b BCE(s_b, y)``: the second
  term is a loss on each block's own pooled score. Without it some blocks' score maps come
  out inverted (METHOD.md, prototype notes).
- **Native resolution.** Images are never resized (resizing erases the JPEG traces). The SEL
  is computed on the whole image, then cropped. The training images' SELs are computed once
  and kept in memory as integer differences when they fit in ``train.sel_cache_gb``
  (:class:`TrainImages`); samples are bit-identical either way.
- **Augmentations keep the JPEG grid.** A training crop of ``train.crop_size`` pixels starts
  at offsets that are multiples of :data:`GRID` (16): JPEG's luminance blocks are 8x8 and
  with 4:2:0 chroma subsampling the chroma blocks cover 16x16 pixels, so a 16-aligned crop
  keeps both grids' phase exactly (an 8-aligned crop could shift the chroma grid by half a
  block). Images smaller than the crop are zero-padded at the bottom/right (a zero SEL is
  "no error"; padding there does not move the grid). A horizontal flip is used only when
  the image width is a multiple of 16: then the flipped block boundaries ``W - 16k`` land
  on the grid again, and since the 2-D DCT basis of a block is even or odd under mirroring,
  the flipped image's coefficients equal the original's up to sign, so its quantisation
  error is exactly that of a flipped-then-compressed image. Vertical flips are not used
  (photographs have an up direction; the same grid argument would need H % 16 == 0).
- **Balanced classes.** Each epoch holds every image of the larger class once and the
  smaller class oversampled (without replacement within a pass) up to the same count.
- **Model selection** on the validation split only (never test): validation AUC of
  full-resolution images, early stopping after ``train.patience`` epochs without gain.
- **Schedule.** AdamW, linear warm-up over the first epoch, cosine decay to 0 at
  ``train.epochs``.
- **Determinism.** The seed fixes the initial weights; the order and augmentations of
  epoch e depend only on ``(seed, e)``, so a resumed run replays exactly the epochs an
  uninterrupted run would have run.
- **Resume.** After every epoch ``<out.parent>/resume/last.pt`` holds model, optimizer,
  scheduler and RNG states, the epoch, the best-so-far model and the log history. It is
  deliberately not the declared output (Snakemake deletes declared outputs before a rerun).
  Running the same command again continues after the last completed epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from weakloc.config import PIPELINE_SECTIONS, Section
from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, read_rgb
from weakloc.manifest import content_hash, read_manifest
from weakloc.runtime import autocast, autocast_dtype, image_logits, resolve_device, set_threads
from weakloc.sel import SelSettings, scale_error_diff, signed_error_diff
from weakloc.wcbnet import build_wcbnet, model_sections, save_checkpoint

#: Crop offsets are multiples of this (the 4:2:0 chroma block size in pixels, a multiple of 8).
GRID = 16

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds"]
RESUME_VERSION = 1


# --------------------------------------------------------------------------- data

def sel_of_file(path: str | Path, sel: SelSettings) -> np.ndarray:
    """``(3Q, H, W) float32`` SEL of the image file at ``path`` (``sel`` config section)."""
    # pixels as stored (orient=False): the detector reads a JPEG on its own 8x8 grid; the labels
    # are per image, so an EXIF rotation changes nothing else (docs/localization.md)
    return sel.of(read_rgb(path, orient=False))


def grid_crop(sel: np.ndarray, size: int, rng: np.random.Generator, flip: bool) -> np.ndarray:
    """A ``(C, size, size)`` crop of ``sel`` (C, H, W) that keeps the JPEG grid phase.

    The offset is a uniformly drawn multiple of :data:`GRID`; a dimension smaller than
    ``size`` is zero-padded at its end. With ``flip`` and ``W % GRID == 0`` the crop is
    mirrored left-right with probability 1/2 (see the module docstring for why that is exact).
    """
    c, h, w = sel.shape
    if flip and w % GRID == 0 and rng.random() < 0.5:
        sel = sel[:, :, ::-1]
    oy = GRID * int(rng.integers(0, (h - size) // GRID + 1)) if h > size else 0
    ox = GRID * int(rng.integers(0, (w - size) // GRID + 1)) if w > size else 0
    out = np.zeros((c, size, size), dtype=np.float32)
    crop = sel[:, oy:oy + size, ox:ox + size]
    out[:, :crop.shape[1], :crop.shape[2]] = crop
    return out


def compact_sel_of_file(path: str | Path, qualities) -> np.ndarray:
    """The SEL of a file as integer differences, int8 when they fit, else int16 (exact)."""
    diff = signed_error_diff(read_rgb(path, orient=False), qualities)  # as stored, like sel_of_file
    if diff.size and int(np.abs(diff).max()) <= 127:
        return diff.astype(np.int8)
    return diff


def sel_cache_bytes(sizes: list[tuple[int, int]], n_qualities: int) -> int:
    """Bytes the compact (int8) SELs of images of ``(width, height)`` ``sizes`` take."""
    return int(sum(3 * n_qualities * int(w) * int(h) for w, h in sizes))


class TrainImages(torch.utils.data.Dataset):
    """Training samples: ``(sel crop (C, S, S) float32, label float32)``.

    Reads only the image files (never masks). ``plan`` is the epoch's list of
    ``(row index, augmentation seed)``; :meth:`set_plan` replaces it each epoch.
    After :meth:`cache_sels` the SELs are held in memory as integer differences (about one
    byte per SEL value; :func:`compact_sel_of_file`) and no file is read again; a sample
    is then bit-identical to one computed from the file.

    With ``pixel_labels`` (self-training, :mod:`weakloc.selftrain`: one ``(H, W) uint8`` map
    per row, in the SEL's coordinates) a sample is ``(sel crop, label, pixel-label crop
    (S, S) int64)``, both crops cut and flipped identically.
    """

    def __init__(self, paths: list[str], labels: np.ndarray, sel: SelSettings, crop_size: int,
                 pixel_labels: list[np.ndarray] | None = None) -> None:
        self.paths = paths
        self.labels = labels.astype(np.float32)
        self.sel = sel
        self.crop_size = crop_size
        self.pixel_labels = pixel_labels
        self.plan: list[tuple[int, int]] = []
        self.cache: list[np.ndarray] | None = None

    def cache_sels(self) -> None:
        """Compute every training image's SEL once and keep it in memory (a progress bar)."""
        self.cache = [compact_sel_of_file(p, self.sel.qualities)
                      for p in tqdm(self.paths, desc="training SEL (cached in memory)", file=sys.stderr, leave=False)]

    def set_plan(self, plan: list[tuple[int, int]]) -> None:
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int):
        row, aug_seed = self.plan[i]
        if self.cache is not None:
            sel = scale_error_diff(self.cache[row], float(self.sel.scale))
        else:
            sel = sel_of_file(self.paths[row], self.sel)
        rng = np.random.default_rng(aug_seed)
        if self.pixel_labels is None:
            return torch.from_numpy(grid_crop(sel, self.crop_size, rng, flip=True)), torch.tensor(self.labels[row])
        pixels = self.pixel_labels[row]
        if pixels.shape != sel.shape[1:]:
            raise WeaklocError(f"{self.paths[row]}: pixel labels of size {pixels.shape} for an image of "
                               f"{sel.shape[1:]}")
        both = grid_crop(np.concatenate([sel, pixels[None].astype(np.float32)]), self.crop_size, rng, flip=True)
        return (torch.from_numpy(np.ascontiguousarray(both[:-1])), torch.tensor(self.labels[row]),
                torch.from_numpy(np.rint(both[-1]).astype(np.int64)))


def balanced_epoch_plan(labels: np.ndarray, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The epoch's ``(row, augmentation seed)`` list, classes balanced, order shuffled.

    Depends only on ``(labels, seed, epoch)``. Every image of the larger class appears once;
    the smaller class is repeated (each pass a fresh permutation) up to the same count.
    """
    rng = np.random.default_rng([seed, epoch, 7919])
    groups = [np.flatnonzero(labels == c) for c in (0, 1)]
    groups = [g for g in groups if g.size]
    n = max(g.size for g in groups)
    rows = []
    for g in groups:
        reps = [rng.permutation(g) for _ in range(math.ceil(n / g.size))]
        rows.append(np.concatenate(reps)[:n])
    order = rng.permutation(np.concatenate(rows))
    aug = rng.integers(0, 2**31 - 1, size=order.size)
    return [(int(r), int(a)) for r, a in zip(order, aug, strict=True)]


def auc_or_nan(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (scikit-learn) or NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


# --------------------------------------------------------------------------- loss

def wcbnet_loss(out, y: torch.Tensor, block_loss_weight: float) -> torch.Tensor:
    """``BCE(logit, y) + block_loss_weight * mean over blocks of BCE(s_b, y)`` (a scalar)."""
    loss = F.binary_cross_entropy_with_logits(out.logit.float(), y)
    if block_loss_weight > 0:
        yb = y[:, None].expand_as(out.block_logits)
        loss = loss + block_loss_weight * F.binary_cross_entropy_with_logits(out.block_logits.float(), yb)
    return loss


#: Pixel-label values of self-training (:mod:`weakloc.selftrain`); 0 = ignore, so a crop's zero padding is ignored.
PIXEL_IGNORE, PIXEL_BACKGROUND, PIXEL_FOREGROUND = 0, 1, 2


@dataclass(frozen=True)
class PixelLoss:
    """The pixel term of self-training: ``weight`` x the mean over blocks of the BCE between each
    block's score-map logits, placed on the pixels as :mod:`weakloc.cams` places its cells
    (``strides``, ``offset``: :func:`weakloc.cams.block_strides`), and the pixel labels; ignored
    pixels are left out."""

    weight: float
    strides: tuple[int, ...]
    offset: float

    def __call__(self, score_maps: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        from weakloc.cams import upsample_cells

        valid = (labels != PIXEL_IGNORE).float()
        target = (labels == PIXEL_FOREGROUND).float()
        n_valid = valid.sum().clamp(min=1.0)
        losses = []
        for cells, stride in zip(score_maps, self.strides, strict=True):
            up = upsample_cells(cells.float(), stride, tuple(labels.shape[-2:]), self.offset)[:, 0]
            bce = F.binary_cross_entropy_with_logits(up, target, reduction="none")
            losses.append((bce * valid).sum() / n_valid)
        return self.weight * torch.stack(losses).mean()


# --------------------------------------------------------------------------- resume state

def run_fingerprint(config: dict, seed: int, manifest: pd.DataFrame, student: str | None = None) -> str:
    """A hash of what determines the training run (not the time budget, threads or device).

    The data are part of it: the ids, splits and labels of every row and the bytes of every
    train and val image (:func:`weakloc.manifest.content_hash`; masks are never read). A
    resume state with another fingerprint belongs to another run and is not reused.
    ``student``: :attr:`Student.fingerprint` of a self-training run (teacher, pixel labels).
    """
    used = manifest[manifest["split"].isin(["train", "val"])]
    train = {k: v for k, v in config["train"].items()
             if k not in ("time_budget_minutes", "threads", "num_workers", "device", "sel_cache_gb")}
    payload = {
        "sections": model_sections(config),
        "train": train,
        "seed": int(seed),
        "rows": manifest[["id", "split", "label"]].astype(str).values.tolist(),
        "data": content_hash(used),
    }
    if student is not None:
        payload["student"] = student
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def resume_path(out_path: str | Path) -> Path:
    """Where the per-epoch resume state of the run writing ``out_path`` lives."""
    return Path(out_path).parent / "resume" / "last.pt"


def _save_resume(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_resume(path: Path, fingerprint: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file: start over rather than fail the run
        print(f"weakloc train: ignoring unreadable resume state {path} ({exc.__class__.__name__})", file=sys.stderr)
        return None
    if not isinstance(state, dict) or state.get("version") != RESUME_VERSION:
        print(f"weakloc train: ignoring resume state {path} of another version", file=sys.stderr)
        return None
    if state.get("fingerprint") != fingerprint:
        print(f"weakloc train: resume state {path} belongs to another run (config, seed or data differ); "
              "starting over", file=sys.stderr)
        return None
    return state


def _write_log(path: Path, history: list[dict]) -> None:
    df = pd.DataFrame(history, columns=LOG_COLUMNS)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainingState:
    """Everything a resumed run continues from: the optimisation and the run's progress.

    :meth:`save` writes it to the resume file after every epoch (with the torch RNG state);
    :meth:`restore` loads such a file. ``epoch`` is the last completed epoch (0 before the
    first); ``best_model`` the best epoch's weights (CPU tensors) and ``best_point`` its
    validation operating point, known only when that epoch ran in this process.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    fingerprint: str
    history: list[dict] = field(default_factory=list)
    epoch: int = 0
    best_auc: float = float("nan")
    best_loss: float = math.inf
    best_epoch: int = 0
    stale: int = 0
    elapsed: float = 0.0
    best_model: dict | None = None
    best_point: dict | None = None
    best_point_known: bool = False
    stop_reason: str | None = None

    def save(self, path: Path) -> None:
        """Write the resume state to ``path`` atomically (a run in progress: no stop reason)."""
        _save_resume(path, {
            "version": RESUME_VERSION, "fingerprint": self.fingerprint, "epoch": self.epoch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else {},
            "rng": _rng_state(), "history": self.history, "best_auc": self.best_auc, "best_loss": self.best_loss,
            "best_epoch": self.best_epoch, "stale": self.stale, "elapsed": self.elapsed,
            "best_model": self.best_model, "stop_reason": None,
        })

    def restore(self, path: Path) -> bool:
        """Continue from the resume state at ``path`` when it belongs to this run; True if it did."""
        state = _load_resume(path, self.fingerprint)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.history = list(state["history"])
        self.epoch = int(state["epoch"])
        self.best_auc, self.best_loss = float(state["best_auc"]), float(state["best_loss"])
        self.best_epoch, self.stale = int(state["best_epoch"]), int(state["stale"])
        self.elapsed = float(state["elapsed"])
        self.best_model = state["best_model"]
        self.stop_reason = state.get("stop_reason")
        if self.stop_reason == "time_budget":
            self.stop_reason = None  # the budget may have grown: re-check it
        print(f"weakloc train: resuming after epoch {self.epoch} from {path}", file=sys.stderr)
        return True

    def record(self, row: dict) -> bool:
        """Append an epoch's log ``row``; update patience and the best epoch. True when it is the new best."""
        self.history.append(row)
        self.elapsed += row["seconds"]
        self.epoch = row["epoch"]
        auc, loss = row["val_auc"], row["val_loss"]
        self.stale = 0 if _gained(auc, loss, self.best_auc, self.best_loss) else self.stale + 1
        if not _better(auc, loss, self.best_auc, self.best_loss):
            return False
        self.best_auc, self.best_loss, self.best_epoch = auc, loss, row["epoch"]
        self.best_model = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return True


# --------------------------------------------------------------------------- stop rules

def _better(auc: float, loss: float, best_auc: float, best_loss: float) -> bool:
    """Validation AUC decides; the validation loss breaks ties and replaces an undefined AUC."""
    if best_loss == math.inf:
        return True
    if math.isnan(auc) or math.isnan(best_auc):
        return loss < best_loss
    if auc > best_auc + 1e-9:
        return True
    return abs(auc - best_auc) <= 1e-9 and loss < best_loss


def _gained(auc: float, loss: float, best_auc: float, best_loss: float) -> bool:
    """Whether an epoch resets patience: a validation-AUC gain (the loss stands in only when the
    AUC is undefined). An AUC tie with a lower loss updates the saved model but is no gain."""
    if math.isnan(auc) or math.isnan(best_auc):
        return _better(auc, loss, best_auc, best_loss)
    return auc > best_auc + 1e-9


@dataclass(frozen=True)
class TrainSettings(Section):
    """The ``train`` config section (see the schema for each key; ``from_config`` checks it)."""

    SECTION = "train"

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    crop_size: int
    block_loss_weight: float
    time_budget_minutes: float | None
    device: str
    num_workers: int
    sel_cache_gb: float
    threads: int | None


@dataclass(frozen=True)
class StopRules:
    """When training ends: after ``epochs`` epochs, ``patience`` epochs without a gain, or when
    the next epoch (at the mean epoch time so far) would pass ``budget_s`` seconds."""

    epochs: int
    patience: int
    budget_s: float | None

    @classmethod
    def from_config(cls, train: TrainSettings) -> StopRules:
        """From the ``train`` section (``epochs``, ``patience``, ``time_budget_minutes``)."""
        budget = train.time_budget_minutes
        return cls(int(train.epochs), int(train.patience), None if budget is None else 60.0 * float(budget))

    def reason(self, state: TrainingState) -> str | None:
        """``max_epochs`` | ``early_stop`` | ``time_budget`` when training stops before the next epoch, else None."""
        if state.epoch + 1 > self.epochs:
            return "max_epochs"
        if state.stale >= self.patience:
            return "early_stop"
        mean_epoch = state.elapsed / len(state.history) if state.history else 0.0
        if self.budget_s is not None and state.history and state.elapsed + mean_epoch > self.budget_s:
            return "time_budget"
        return None


# --------------------------------------------------------------------------- training

def _epoch(model, loader, optimizer, scheduler, scaler, device, amp, block_loss_weight, desc,
           pixel_loss: PixelLoss | None = None) -> float:
    """One pass over ``loader``; returns the mean training loss (with ``pixel_loss``: batches carry pixel labels)."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, file=sys.stderr, leave=False)
    for batch in bar:
        x, y = batch[0], batch[1]
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with autocast(device, amp):
            out = model(x)
        loss = wcbnet_loss(out, y, block_loss_weight)
        if pixel_loss is not None:
            loss = loss + pixel_loss(out.score_maps, batch[2].to(device))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


def warmup_cosine(warmup_steps: int, total_steps: int):
    """The learning-rate factor of a step: linear warm-up over ``warmup_steps``, then cosine
    decay to 0 at ``total_steps`` (for ``torch.optim.lr_scheduler.LambdaLR``)."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    return f


@dataclass(frozen=True)
class Student:
    """What makes a training run self-training (:mod:`weakloc.selftrain`): the teacher's ``weights``
    to start from, the pixel labels of the training rows it uses (by manifest id; the other
    training rows are left out), the pixel term, a ``fingerprint`` of all that (part of the
    resume state's) and the checkpoint's extra ``meta``."""

    weights: dict
    pixel_labels: dict[str, np.ndarray]
    pixel_loss: PixelLoss
    fingerprint: str
    meta: dict


@dataclass
class _Run:
    """What every epoch of one training run reads (never part of the resume state)."""

    config: dict
    train: TrainSettings
    seed: int
    device: torch.device
    amp: torch.dtype | None
    train_labels: np.ndarray
    dataset: TrainImages
    loader: torch.utils.data.DataLoader
    val_labels: np.ndarray
    val_sels: list[np.ndarray]
    pixel_loss: PixelLoss | None = None
    extra_meta: dict = field(default_factory=dict)


def train_wcbnet(manifest_path: str | Path, config: dict, seed: int, out_path: str | Path,
                 log_csv: str | Path, student: Student | None = None) -> dict:
    """Train WCBnet on the manifest's ``train`` split with image labels only.

    Args:
        manifest_path: prepared dataset's ``manifest.csv`` (``train`` and ``val`` rows used).
        config: validated configuration (``sel``, ``model``, ``train`` sections read).
        seed: training seed (initial weights, epoch order, augmentations).
        out_path: the best model on validation AUC, written with
            :func:`weakloc.wcbnet.save_checkpoint` (``meta``: ``epoch``, ``val_auc``,
            ``val_loss``, ``seed``).
        log_csv: per-epoch log, columns ``epoch,train_loss,val_loss,val_auc,lr,seconds``,
            rewritten atomically after every epoch.
        student: self-training (:class:`Student`): start from the teacher's weights, train on
            the rows with pixel labels, add the pixel term to the loss.

    Returns:
        ``{"best_epoch", "best_val_auc", "epochs_run", "stop_reason", "seconds"}``;
        ``stop_reason`` is ``max_epochs``, ``early_stop`` or ``time_budget``.
    """
    out_path, log_csv, manifest_path = Path(out_path), Path(log_csv), Path(manifest_path)
    df, train_df, val_df = _training_splits(manifest_path)
    if student is not None:
        train_df = _student_rows(manifest_path, train_df, student)
    train = TrainSettings.from_config(config)
    device = resolve_device(train.device, "train.device")
    amp = autocast_dtype(device)
    if device.type == "cpu":
        set_threads(train.threads)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    model, optimizer, scheduler, scaler = _optimization(config, train, train_df["label"].to_numpy(), device, amp)
    if student is not None:
        model.load_state_dict(student.weights)
    run = _prepare_run(config, train, seed, device, amp, train_df, val_df, student)
    fingerprint = run_fingerprint(config, seed, df, None if student is None else student.fingerprint)
    state = TrainingState(model, optimizer, scheduler, scaler, fingerprint)
    rpath = resume_path(out_path)
    state.restore(rpath)

    rules = StopRules.from_config(train)
    cache_decided = False
    while state.stop_reason is None:
        state.stop_reason = rules.reason(state)
        if state.stop_reason is not None:
            break
        if not cache_decided:  # only once an epoch will run (not when a finished run is rerun)
            _cache_if_it_fits(run.dataset, train_df, train.sel_cache_gb)
            cache_decided = True
        _run_epoch(state, run, rules.epochs, out_path, log_csv, rpath)

    _finish(state, run, out_path, log_csv, rpath)
    return {"best_epoch": state.best_epoch, "best_val_auc": state.best_auc, "epochs_run": len(state.history),
            "stop_reason": state.stop_reason, "seconds": state.elapsed}


def _training_splits(manifest_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The manifest, its ``train`` rows and its ``val`` rows; errors when training cannot run."""
    df = read_manifest(manifest_path)
    train_df = df[df["split"] == "train"].reset_index(drop=True)
    val_df = df[df["split"] == "val"].reset_index(drop=True)
    if train_df.empty:
        raise WeaklocError(f"{manifest_path}: no rows with split 'train'")
    if val_df.empty:
        raise WeaklocError(f"{manifest_path}: no rows with split 'val' (needed for model selection)")
    if len(np.unique(train_df["label"].to_numpy())) < 2:
        raise WeaklocError(f"{manifest_path}: the train split needs both authentic (0) and manipulated (1) images")
    return df, train_df, val_df


def _student_rows(manifest_path: Path, train_df: pd.DataFrame, student: Student) -> pd.DataFrame:
    """The training rows that have pixel labels, in manifest order; errors when self-training cannot run."""
    unknown = sorted(set(student.pixel_labels) - set(train_df["id"]))
    if unknown:
        raise WeaklocError(f"{manifest_path}: pixel labels for {len(unknown)} id(s) not in the train split "
                           f"(first: {unknown[0]!r})")
    rows = train_df[train_df["id"].isin(student.pixel_labels)].reset_index(drop=True)
    if len(np.unique(rows["label"].to_numpy())) < 2:
        raise WeaklocError(f"{manifest_path}: the pixel-labelled train rows need both authentic and manipulated images")
    return rows


def _optimization(config: dict, tcfg: TrainSettings, train_labels: np.ndarray, device: torch.device,
                  amp: torch.dtype | None):
    """A fresh model (drawn from torch's RNG), AdamW, the warm-up + cosine schedule and the fp16 scaler."""
    model = build_wcbnet(config).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(tcfg.lr), weight_decay=float(tcfg.weight_decay))
    batch_size = int(tcfg.batch_size)
    n_per_epoch = 2 * int(max(np.sum(train_labels == 0), np.sum(train_labels == 1)))
    steps_per_epoch = math.ceil(n_per_epoch / batch_size)
    total_steps = steps_per_epoch * int(tcfg.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps_per_epoch, total_steps))
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    return model, optimizer, scheduler, scaler


def _prepare_run(config: dict, tcfg: TrainSettings, seed: int, device: torch.device, amp: torch.dtype | None,
                 train_df: pd.DataFrame, val_df: pd.DataFrame, student: Student | None = None) -> _Run:
    """The training loader and the validation SELs (computed once: full resolution, no augmentation)."""
    sel = SelSettings.from_config(config)
    train_labels = train_df["label"].to_numpy()
    pixels = None if student is None else [student.pixel_labels[i] for i in train_df["id"]]
    dataset = TrainImages(train_df["image"].tolist(), train_labels, sel, int(tcfg.crop_size), pixels)
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=int(tcfg.batch_size), shuffle=False, num_workers=int(tcfg.num_workers),
        pin_memory=device.type == "cuda", drop_last=False, generator=generator,
        persistent_workers=False,
    )
    val_sels = [sel_of_file(p, sel) for p in
                tqdm(val_df["image"], desc="validation SEL", file=sys.stderr, leave=False)]
    return _Run(config, tcfg, seed, device, amp, train_labels, dataset, loader, val_df["label"].to_numpy(), val_sels,
                None if student is None else student.pixel_loss, {} if student is None else student.meta)


def _run_epoch(state: TrainingState, run: _Run, epochs: int, out_path: Path, log_csv: Path, rpath: Path) -> None:
    """Train epoch ``state.epoch + 1``, validate, log it, save a new best model and the resume state."""
    tcfg = run.train
    epoch = state.epoch + 1
    t0 = time.perf_counter()
    run.dataset.set_plan(balanced_epoch_plan(run.train_labels, run.seed, epoch))
    lr = state.optimizer.param_groups[0]["lr"]
    train_loss = _epoch(state.model, run.loader, state.optimizer, state.scheduler, state.scaler, run.device, run.amp,
                        float(tcfg.block_loss_weight), f"epoch {epoch}/{epochs}", run.pixel_loss)
    logits = image_logits(state.model, run.val_sels, run.device, batch_size=int(tcfg.batch_size), amp=run.amp)
    val_loss = float(F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(run.val_labels.astype(np.float64))))
    val_auc = auc_or_nan(run.val_labels, logits)
    seconds = time.perf_counter() - t0
    if state.record({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                     "val_auc": val_auc, "lr": lr, "seconds": seconds}):
        state.best_point, state.best_point_known = _operating_point(run.val_labels, logits), True
        _save_best(out_path, state.best_model, run.config, state.best_epoch, state.best_auc, state.best_loss,
                   run.seed, operating_point=state.best_point, extra_meta=run.extra_meta)
    _write_log(log_csv, state.history)
    state.save(rpath)
    print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} val_auc {val_auc:.4f} "
          f"({seconds:.1f} s)", file=sys.stderr)


def _finish(state: TrainingState, run: _Run, out_path: Path, log_csv: Path, rpath: Path) -> None:
    """(Re)write the declared outputs from the best model and the history; record the stop reason.

    This also restores the outputs when Snakemake deleted them before a rerun of a finished run.
    """
    if state.best_model is not None:
        if not state.best_point_known:  # resumed after the best epoch: score the validation split again
            best = build_wcbnet(run.config).to(run.device).to(memory_format=torch.channels_last)
            best.load_state_dict(state.best_model)
            logits = image_logits(best, run.val_sels, run.device, run.train.batch_size, run.amp)
            state.best_point = _operating_point(run.val_labels, logits)
        _save_best(out_path, state.best_model, run.config, state.best_epoch, state.best_auc, state.best_loss,
                   run.seed, state.stop_reason, operating_point=state.best_point, extra_meta=run.extra_meta)
    _write_log(log_csv, state.history)
    if rpath.is_file():
        final = torch.load(rpath, map_location="cpu", weights_only=True)
        if final.get("stop_reason") != state.stop_reason:
            final["stop_reason"] = state.stop_reason
            _save_resume(rpath, final)


def _cache_if_it_fits(dataset: TrainImages, train_df: pd.DataFrame, limit: float) -> None:
    """Cache the training SELs in memory when they fit in ``train.sel_cache_gb``; say which."""
    sizes = list(zip(train_df["width"], train_df["height"], strict=True))
    need = sel_cache_bytes(sizes, len(dataset.sel.qualities))
    if need <= float(limit) * 1e9:
        print(f"weakloc train: caching the training SELs in memory ({need / 1e9:.2f} GB)", file=sys.stderr)
        dataset.cache_sels()
    else:
        print(f"weakloc train: training SELs computed per batch (caching them would take {need / 1e9:.2f} GB "
              f"> train.sel_cache_gb {limit})", file=sys.stderr)


def _operating_point(val_labels: np.ndarray, val_logits: np.ndarray) -> dict | None:
    """The image-level verdict threshold chosen on the validation probabilities (max Youden's J)."""
    from weakloc.operating_point import choose_threshold

    point = choose_threshold(val_labels, 1.0 / (1.0 + np.exp(-np.asarray(val_logits, dtype=np.float64))))
    return None if point is None else {**point, "split": "val"}


def _save_best(out_path: Path, best_state: dict, config: dict, epoch: int, auc: float,
               loss: float, seed: int, stop_reason: str | None = None,
               operating_point: dict | None = None, extra_meta: dict | None = None) -> None:
    """Write the best weights ``best_state`` (CPU tensors) to ``out_path``.

    ``meta`` records why training stopped (None while it runs) and the time budget, so the
    tables can flag a run whose length depended on the machine's speed and load;
    ``extra_meta`` (a self-trained student's: its teacher and pixel labels) is added to it.
    ``pipeline``: the config's :data:`weakloc.config.PIPELINE_SECTIONS` (the localization settings
    of the study; None when the caller passed none of them).
    """
    best = build_wcbnet(config)
    best.load_state_dict(best_state)
    save_checkpoint(out_path, best, config, {
        "epoch": int(epoch), "val_auc": None if math.isnan(auc) else float(auc),
        "val_loss": float(loss), "seed": int(seed), "stop_reason": stop_reason,
        "time_budget_minutes": TrainSettings.from_config(config).time_budget_minutes,
        # the verdict threshold of `weakloc localize` (weakloc.detection.operating_point); None
        # when the validation split has one class only
        "image_threshold": None if operating_point is None else {**operating_point, "epoch": int(epoch)},
        # the study's localization pipeline, for `weakloc localize` without --config (a student: its teacher's)
        "pipeline": {name: config[name] for name in PIPELINE_SECTIONS if name in config} or None,
        **(extra_meta or {}),
    })
