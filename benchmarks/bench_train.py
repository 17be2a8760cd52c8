"""WCBnet training and inference throughput (images/s) at one or more crop sizes on this machine.

    python benchmarks/bench_train.py [--config FILE] [--size 256 128] [--steps 5] [--threads N]

Uses the configuration's sel/model/train sections (defaults: the built-in config) and real
SEL inputs (crops of scikit-image's photos, JPEG q=85). Several ``--size`` values are timed
side by side in one run, on the same model and inputs (one row each). Times optimizer steps of
train.batch_size crops (forward, loss with the per-block term, backward, AdamW) after one
warm-up step, and full-image inference. Prints images/s, the parameter count, the attention
module's share of parameters, and the epoch time for a given number of training images.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image
from skimage import data

from weakloc.config import load_config
from weakloc.runtime import set_threads
from weakloc.sel import signed_error_level
from weakloc.training import wcbnet_loss
from weakloc.wcbnet import attention_parameter_share, build_wcbnet, parameter_count


def _sel_batch(n: int, size: int, sel_cfg: dict) -> torch.Tensor:
    photos = [data.chelsea(), data.coffee(), data.rocket(), data.stereo_motorcycle()[0]]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        arr = np.asarray(Image.fromarray(p).resize((max(size, p.shape[1]), max(size, p.shape[0]))))
        y = int(rng.integers(0, arr.shape[0] - size + 1))
        x = int(rng.integers(0, arr.shape[1] - size + 1))
        buf = io.BytesIO()
        Image.fromarray(arr[y:y + size, x:x + size]).save(buf, format="JPEG", quality=85)
        rgb = np.asarray(Image.open(buf).convert("RGB"))
        out.append(signed_error_level(rgb, sel_cfg["qualities"], float(sel_cfg["scale"])))
    return torch.from_numpy(np.stack(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="study config YAML (default: built-in defaults)")
    ap.add_argument("--size", type=int, nargs="+", default=None,
                    help="crop size(s), timed side by side (default: train.crop_size)")
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads or all)")
    ap.add_argument("--train-images", type=int, default=420, help="training images per epoch to extrapolate to")
    args = ap.parse_args()
    cfg = load_config(args.config)
    tcfg = cfg["train"]
    threads = set_threads(args.threads or tcfg["threads"])
    sizes = args.size or [int(tcfg["crop_size"])]
    bs = int(tcfg["batch_size"])
    torch.manual_seed(0)
    model = build_wcbnet(cfg).to(memory_format=torch.channels_last)
    print(f"WCBnet widths {cfg['model']['widths']} x {cfg['model']['convs_per_block']} convs, "
          f"{parameter_count(model):,} parameters, cross-block attention {100 * attention_parameter_share(model):.2f}%")
    rates = {size: _time(model, cfg, size, args.steps) for size in sizes}
    for size, (train_rate, infer_rate) in rates.items():
        print(f"{size} px, batch {bs}, {threads} threads: training {train_rate:.1f} images/s, "
              f"inference {infer_rate:.1f} images/s; one epoch of {args.train_images} images: about "
              f"{args.train_images / train_rate:.0f} s (+ validation); {tcfg['epochs']} epochs: "
              f"about {tcfg['epochs'] * args.train_images / train_rate / 60:.1f} min")
    if len(sizes) > 1:
        base = rates[sizes[0]][0]
        print("training cost per image relative to " + f"{sizes[0]} px: "
              + ", ".join(f"{size} px {base / rate:.2f}x" for size, (rate, _) in rates.items()))


def _time(model, cfg: dict, size: int, steps: int) -> tuple[float, float]:
    """``(training images/s, inference images/s)`` at crop ``size`` (fresh optimizer, one warm-up step)."""
    tcfg = cfg["train"]
    bs = int(tcfg["batch_size"])
    x = _sel_batch(bs, size, cfg["sel"]).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([i % 2 for i in range(bs)], dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=float(tcfg["lr"]))
    model.train()
    for step in range(steps + 1):
        if step == 1:
            t = time.perf_counter()
        loss = wcbnet_loss(model(x), y, float(tcfg["block_loss_weight"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_rate = steps * bs / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        model(x[:4])
        t = time.perf_counter()
        for _ in range(steps):
            model(x)
        infer_rate = steps * bs / (time.perf_counter() - t)
    return train_rate, infer_rate


if __name__ == "__main__":
    main()
