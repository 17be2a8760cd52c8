"""Speed of `weakloc localize` against the pyIFD DCT detector on the same photos, same run.

The photos are the colour and grey photographs shipped inside installed Python packages
(scikit-image's `skimage.data`, scikit-learn's sample images, matplotlib's sample data; no
network), each resized to a longer side of 320 and of 448 pixels and saved as JPEG q=90:
34 photos from 213x320 to 448x448.

Timed, each as a fresh process pinned to the first --cores CPUs (start-up included; no
OMP_NUM_THREADS, so localize picks its default threads: the cores less one for the segmenter
thread):

- ours: `weakloc localize DIR --checkpoint CKPT --out OUT` with no settings given, plus any
  --extra options. Without --config that runs the settings the checkpoint stores (a trained
  default checkpoint: the study's pipeline, MobileSAM and the calibrated decision); the random
  checkpoint below stores none and so runs the schema's defaults (slic, P > 0.5).
  `--extra "--config config.yaml"` times the study's pipeline with the random checkpoint;
- DCT: a Python process that imports weakloc.baselines and writes the normalised pyIFD DCT
  map of each photo as an 8-bit PNG (`weakloc baseline dct`'s work without a manifest).

Then, per image and start-up excluded: both again in one process each after a warm-up
image (ours: Localizer + the four files localize writes; DCT: baseline_map + write_prob).
Each measurement is repeated --repeats times, alternating ours and DCT, and the minimum is
reported (the machine is shared; the minimum is the least disturbed run). The 1-minute load
average is printed with every result.

Uses --checkpoint if given, else a randomly initialised WCBnet of the default configuration
(the same architecture and cost as a trained one).

    python benchmarks/bench_localize.py [--checkpoint CKPT] [--cores 2] [--repeats 3] [--extra "--segment-max-side 224"]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDES = (320, 448)

DCT_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from weakloc.baselines import baseline_map
from weakloc.io import list_images, write_prob
src, out, warm = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
out.mkdir(parents=True, exist_ok=True)
paths = list_images([src])
if warm:
    write_prob(baseline_map("dct", paths[0]), out / "warm.png")
times = {}
for p in paths:
    t, c = time.perf_counter(), time.process_time()
    write_prob(baseline_map("dct", p), out / f"{p.stem}.png")
    times[p.name] = (time.perf_counter() - t, time.process_time() - c)
print(json.dumps({"per_image": times, "in_process": time.perf_counter() - t0}))
"""

OURS_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from weakloc.localize import write_image_outputs
from weakloc.pipeline import Localizer, default_threads
from weakloc.io import list_images
from weakloc.commands import config_from_args
import argparse
src, out, ckpt = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cfg_path, cfg_json = sys.argv[4] or None, sys.argv[5] or None
# no --config/--config-json: None, as `weakloc localize` does (the checkpoint's stored settings)
config = config_from_args(argparse.Namespace(config=cfg_path, config_json=cfg_json)) if cfg_path or cfg_json else None
loc = Localizer(ckpt, config, threads=default_threads(True))
paths = list_images([src])
loc(paths[0])  # warm-up
times = {}
for p in paths:
    t, c = time.perf_counter(), time.process_time()
    res, rgb = loc.run(p)
    write_image_outputs(out, p.stem, res, rgb, p)
    times[p.name] = (time.perf_counter() - t, time.process_time() - c)
print(json.dumps({"per_image": times, "in_process": time.perf_counter() - t0}))
"""


def sample_photos(out: Path) -> list[Path]:
    """The packaged photographs at two sizes, as JPEG q=90 files in ``out``."""
    import matplotlib.cbook as cbook
    import skimage.data as sd
    from sklearn.datasets import load_sample_image

    srcs = {n: getattr(sd, n)() for n in ("astronaut", "chelsea", "coffee", "hubble_deep_field", "retina", "rocket",
                                          "immunohistochemistry", "camera", "moon", "coins", "grass", "brick",
                                          "gravel")}
    srcs["motorcycle"] = sd.stereo_motorcycle()[0]
    for n in ("china.jpg", "flower.jpg"):
        srcs[n[:-4]] = load_sample_image(n)
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        srcs["grace_hopper"] = np.asarray(Image.open(fh).convert("RGB"))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, arr in sorted(srcs.items()):
        im = Image.fromarray(arr).convert("RGB")
        for side in SIDES:
            s = side / max(im.size)
            p = out / f"{name}_{side}.jpg"
            im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS).save(p, quality=90)
            paths.append(p)
    return paths


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


CORES = [2]


def _pin() -> None:
    os.sched_setaffinity(0, range(CORES[0]))


def _wall(cmd: list[str], env: dict, cpu: list | None = None) -> tuple[float, str]:
    """Run ``cmd``; its wall seconds and stdout (its user + system CPU seconds appended to ``cpu``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=_pin)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return dt, proc.stdout


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--cores", type=int, default=2, help="CPUs the timed processes may use")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--extra", default="",
                    help="extra `weakloc localize` options (--segment-max-side N, --config FILE and --config-json JSON "
                    "also reach the per-image runs)")
    args = ap.parse_args()
    CORES[0] = args.cores
    env = _env()
    py = sys.executable
    weakloc = str(Path(py).with_name("weakloc"))
    extra = shlex.split(args.extra)
    cfg_json = extra[extra.index("--config-json") + 1] if "--config-json" in extra else ""
    cfg_path = extra[extra.index("--config") + 1] if "--config" in extra else ""
    if "--segment-max-side" in extra:  # the same setting for the in-process (per-image) runs
        cfg = json.loads(cfg_json or "{}")
        cfg.setdefault("localize", {})["segment_max_side"] = int(extra[extra.index("--segment-max-side") + 1])
        cfg_json = json.dumps(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
            ckpt_note = str(ckpt)
        else:
            ckpt = tmp / "wcbnet.pt"
            subprocess.run([py, "-c", "import sys, torch\nfrom weakloc.config import validate_config\n"
                            "from weakloc.wcbnet import build_wcbnet, save_checkpoint\ntorch.manual_seed(0)\n"
                            "c = validate_config({})\nsave_checkpoint(sys.argv[1], build_wcbnet(c), c)", str(ckpt)],
                           check=True, env=env)
            ckpt_note = "randomly initialised default WCBnet (same cost as a trained one)"
        photos = sample_photos(tmp / "photos")
        sizes = [Image.open(p).size for p in photos]
        print(f"{len(photos)} photos from packaged sample data, {min(sizes, key=lambda s: s[0] * s[1])} to "
              f"{max(sizes, key=lambda s: s[0] * s[1])} px (w, h), "
              f"{sum(w * h for w, h in sizes) / 1e6:.2f} Mpx in all; "
              f"{args.cores} cores; checkpoint: {ckpt_note}; localize options: {args.extra or '(defaults)'}")

        ours_cli = [weakloc, "localize", str(tmp / "photos"), "--checkpoint", str(ckpt), "--out", str(tmp / "ours"),
                    *extra]
        dct_cli = [py, "-c", DCT_SCRIPT, str(tmp / "photos"), str(tmp / "dct"), "0"]
        walls = {"ours": [], "dct": []}
        cpus = {"ours": [], "dct": []}
        for r in range(args.repeats):
            for name, cmd in (("ours", ours_cli), ("dct", dct_cli)):
                dt, _ = _wall(cmd, env, cpus[name])
                walls[name].append(dt)
                print(f"  run {r + 1}: {name:4s} {dt:6.2f} s wall, {cpus[name][-1]:6.2f} s CPU  ({_load()})")
        ours_total, dct_total = min(walls["ours"]), min(walls["dct"])
        ours_cpu, dct_cpu = min(cpus["ours"]), min(cpus["dct"])

        per = {"ours": None, "dct": None}
        for _ in range(args.repeats):
            for name, cmd in (("ours", [py, "-c", OURS_SCRIPT, str(tmp / "photos"), str(tmp / "ours_api"), str(ckpt),
                                        cfg_path, cfg_json]),
                              ("dct", [py, "-c", DCT_SCRIPT, str(tmp / "photos"), str(tmp / "dct2"), "1"])):
                _, stdout = _wall(cmd, env)
                times = json.loads(stdout.strip().splitlines()[-1])["per_image"]
                per[name] = times if per[name] is None else \
                    {k: [min(a, b) for a, b in zip(v, per[name][k], strict=False)] for k, v in times.items()}

        print(f"\nper image, start-up excluded (min of {args.repeats}; ms; CPU = the process's CPU time in all "
              "its threads):")
        print(f"  {'photo':28s} {'size':>9s} {'ours':>8s} {'DCT':>8s} {'ratio':>6s} {'ours CPU':>9s} {'DCT CPU':>8s}")
        for p, (w, h) in zip(photos, sizes, strict=False):
            (o, oc), (d, dc) = (np.array(per["ours"][p.name]) * 1000), (np.array(per["dct"][p.name]) * 1000)
            print(f"  {p.name:28s} {w:4d}x{h:<4d} {o:8.1f} {d:8.1f} {o / d:6.2f} {oc:9.1f} {dc:8.1f}")
        ours_sum, dct_sum = (sum(v[0] for v in per[k].values()) for k in ("ours", "dct"))
        ours_csum, dct_csum = (sum(v[1] for v in per[k].values()) for k in ("ours", "dct"))
        n = len(photos)
        print(f"\n{'':34s}{'ours':>10s}{'DCT':>10s}{'ratio':>8s}")
        print(f"{'start-up included (total, s)':34s}{ours_total:10.2f}{dct_total:10.2f}{ours_total / dct_total:8.2f}")
        print(f"{'  the same, CPU seconds':34s}{ours_cpu:10.2f}{dct_cpu:10.2f}{ours_cpu / dct_cpu:8.2f}")
        print(f"{'start-up excluded (total, s)':34s}{ours_sum:10.2f}{dct_sum:10.2f}{ours_sum / dct_sum:8.2f}")
        print(f"{'  the same, CPU seconds':34s}{ours_csum:10.2f}{dct_csum:10.2f}{ours_csum / dct_csum:8.2f}")
        print(f"{'per image, start-up excluded (ms)':34s}{1000 * ours_sum / n:10.1f}{1000 * dct_sum / n:10.1f}")
        print(f"{'start-up (total - per-image sum, s)':34s}{ours_total - ours_sum:10.2f}{dct_total - dct_sum:10.2f}")
        print(f"{'  the same, CPU seconds':34s}{ours_cpu - ours_csum:10.2f}{dct_cpu - dct_csum:10.2f}")
        print(f"target: ours <= 2x DCT start-up included; {_load()}")


if __name__ == "__main__":
    main()
