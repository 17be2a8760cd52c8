"""Per-image costs of the comparison protocol's steps, and what they add to a study's run.

    python benchmarks/bench_protocol.py [--config config.yaml] [--size 256] [--images 8] [--threads 2]

Times, on crops of scikit-image's photos at --size, in one process with --threads torch
threads (start-up excluded; the minimum over --repeats is reported, the machine is shared):

- each perturbation of the robustness protocol (JPEG 70, blur 7, noise 7, resize 0.5);
- the robustness pipeline per image (`weakloc localize`'s default: block maps, the first fusion,
  refinement with robustness.segmenters), with a randomly initialised WCBnet of the config's
  architecture (the same cost as a trained one);
- block maps alone (the cost of `cams` and of `detect` per image), SLIC, the two peer rules;
- the classic baselines of evaluate.baselines.

Then prints the projected added work of the config's protocol, from these costs, its
cross_dataset sets (test images), its robustness levels and the masked manipulated test
images (half of the test split): seconds per step and the wall time on 2 cores.
SAM is not timed here (docs/segmenters.md: 3.0 CPU s per image at 3 points per side); its
cost is added from that figure, labelled so. Job start-up (about 2 s per job) is counted per
job. A projection, not a measurement of a run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SAM_CPU_S_PER_IMAGE = {3: 3.0, 4: 4.4, 6: 7.3, 8: 12.4}  # docs/segmenters.md
JOB_START_S = 2.0


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    from skimage import data

    from weakloc.baselines import baseline_map
    from weakloc.cams import block_maps
    from weakloc.config import validate_config
    from weakloc.peer_rules import edgecam_vote, sepl_select
    from weakloc.perturb import perturb_sample
    from weakloc.pipeline import Localizer
    from weakloc.wcbnet import build_wcbnet, load_checkpoint, save_checkpoint

    torch.set_num_threads(args.threads)
    cfg = validate_config(yaml.safe_load(Path(args.config).read_text()) or {})
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rgbs = [np.asarray(Image.fromarray(photos[i % 4]).resize((args.size, args.size))) for i in range(args.images)]
    mask = np.zeros((args.size, args.size), bool)
    mask[args.size // 4: args.size // 2, args.size // 4: args.size // 2] = True
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "w.pt"
        save_checkpoint(ckpt, build_wcbnet(cfg).eval(), cfg)
        model, meta = load_checkpoint(ckpt)
        paths = []
        for i, rgb in enumerate(rgbs):
            p = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rgb).save(p, quality=85)
            paths.append(p)
        n = len(rgbs)
        per = {}
        rng = np.random.default_rng(0)
        for kind, level in (("jpeg", 70), ("blur", 7), ("noise", 7), ("resize", 0.5)):
            per[f"perturb {kind}"] = best_of(lambda k=kind, v=level: [perturb_sample(r, mask, k, v, rng) for r in rgbs],
                                             args.repeats) / n
        localizer = Localizer.from_model(model, meta, cfg, segmenters=cfg["robustness"]["segmenters"])
        per["robustness pipeline"] = best_of(lambda: [localizer(r) for r in rgbs], args.repeats) / n
        per["block maps (cams, detect)"] = best_of(
            lambda: [block_maps(model, meta, r, cfg["cams"]["method"], cfg["cams"]["max_side"]) for r in rgbs],
            args.repeats) / n
        slic = Localizer.from_model(model, meta, cfg, segmenters=["slic"]).segmenters[0]
        parts = [slic(r) for r in rgbs]
        per["slic"] = best_of(lambda: [slic(r) for r in rgbs], args.repeats) / n
        coarse = [rng.random(mask.shape).astype(np.float32) for _ in rgbs]
        per["peer rules (both)"] = best_of(lambda: [(edgecam_vote(c, p), sepl_select(c, p))
                                                    for c, p in zip(coarse, parts, strict=False)],
                                           args.repeats) / n
        lo_hi = tuple(cfg["evaluate"]["baseline_percentiles"])
        per["baselines (all)"] = best_of(lambda: [baseline_map(b, p, lo_hi) for b in cfg["evaluate"]["baselines"]
                                                  for p in paths], 1) / n
    load = os.getloadavg()[0]
    print(f"## Per image at {args.size} px, {args.threads} thread(s), load average {load:.1f} [measured]\n")
    print("| step | s per image |\n|---|---:|")
    for k, v in per.items():
        print(f"| {k} | {v:.3f} |")

    test = round(cfg["dataset"]["synthetic"]["n_images"] * cfg["dataset"]["splits"]["test"]) \
        if cfg["dataset"]["name"] == "synthetic" else None
    cross = []
    for e in cfg["cross_dataset"]["datasets"]:
        d = e["dataset"]
        if d["name"] == "synthetic":
            cross.append((e["id"], round(d["synthetic"]["n_images"] * d["splits"]["test"])))
    levels = 1 + sum(len(cfg["robustness"][k]) for k in ("jpeg", "blur", "noise", "resize"))
    masked = (test or 0) // 2
    sam = "sam" in cfg["segmenters"]["use"]
    sam_s = SAM_CPU_S_PER_IMAGE.get(cfg["segmenters"]["sam"]["points_per_side"], 3.0)
    # (part, seconds of --threads-thread torch work, seconds of single-threaded work, SAM CPU seconds)
    rows = []
    for cid, n_img in cross:
        torch_s = n_img * 2 * per["block maps (cams, detect)"]
        single = n_img * (per["slic"] + per["peer rules (both)"] + per["baselines (all)"])
        jobs = 7 + 2 * len(cfg["evaluate"]["baselines"]) + 4 + len(cfg["segmenters"]["use"])
        rows.append((f"cross {cid} ({n_img} images)", torch_s, single + jobs * JOB_START_S,
                     n_img * sam_s if sam else 0.0))
    if masked:
        torch_s = masked * levels * per["robustness pipeline"]
        single = masked * (levels * per["baselines (all)"]
                           + (levels - 1) * np.mean([per[k] for k in per if k.startswith("perturb")]))
        rows.append((f"robustness ({levels} levels x {masked} images)", torch_s,
                     single + 3 * levels * JOB_START_S, 0.0))
        rows.append(("peer rules on the test split", 0.0, test * per["peer rules (both)"] + 4 * JOB_START_S, 0.0))
    print(f"\n## Added by the protocol of {args.config} [projection from the costs above]\n")
    print(f"Wall minutes = {args.threads}-thread work + (single-threaded work + SAM CPU s) / 2 cores, at the "
          f"load above (load {load:.1f}; an idle machine is faster).\n")
    print("| part | s of 2-thread work | s of 1-thread work | SAM CPU s (docs/segmenters.md) | wall min |")
    print("|---|---:|---:|---:|---:|")
    total = 0.0
    for name, torch_s, single, sam_cpu in rows:
        wall = (torch_s + (single + sam_cpu) / 2) / 60
        total += wall
        print(f"| {name} | {torch_s:.0f} | {single:.0f} | {sam_cpu:.0f} | {wall:.1f} |")
    print(f"\nTotal: about {total:.1f} minutes more (perfect packing of the single-threaded jobs).")


if __name__ == "__main__":
    main()
