"""WCBnet training and inference throughput (images/s) at the default size on this machine.

    python benchmarks/bench_train.py [--config FILE] [--size 256] [--steps 5] [--threads N]

Uses the configuration's sel/model/train sections (defaults: the built-in config) and real
SEL inputs (crops of scikit-image's photos, JPEG q=85). Times optimizer steps of
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
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
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
    ap.add_argument("--size", type=int, default=None, help="crop size (default: train.crop_size)")
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads or all)")
    ap.add_argument("--train-images", type=int, default=420, help="training images per epoch to extrapolate to")
    args = ap.parse_args()
    cfg = load_config(args.config)
    tcfg = cfg["train"]
    threads = set_threads(args.threads or tcfg["threads"])
    size = args.size or int(tcfg["crop_size"])
    bs = int(tcfg["batch_size"])
    torch.manual_seed(0)
    model = build_wcbnet(cfg).to(memory_format=torch.channels_last)
    print(f"WCBnet widths {cfg['model']['widths']} x {cfg['model']['convs_per_block']} convs, "
          f"{parameter_count(model):,} parameters, cross-block attention {100 * attention_parameter_share(model):.2f}%")
    x = _sel_batch(bs, size, cfg["sel"]).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([i % 2 for i in range(bs)], dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=float(tcfg["lr"]))
    model.train()
    for step in range(args.steps + 1):
        if step == 1:
            t = time.perf_counter()
        loss = wcbnet_loss(model(x), y, float(tcfg["block_loss_weight"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_rate = args.steps * bs / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        model(x[:4])
        t = time.perf_counter()
        for _ in range(args.steps):
            model(x)
        infer_rate = args.steps * bs / (time.perf_counter() - t)
    print(f"{size} px, batch {bs}, {threads} threads: training {train_rate:.1f} images/s, "
          f"inference {infer_rate:.1f} images/s")
    print(f"one epoch of {args.train_images} images: about {args.train_images / train_rate:.0f} s "
          f"(+ validation); {tcfg['epochs']} epochs: "
          f"about {tcfg['epochs'] * args.train_images / train_rate / 60:.1f} min")


if __name__ == "__main__":
    main()
