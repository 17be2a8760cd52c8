"""Seconds per image of `weakloc localize` (SAM, SLIC) and of the pyIFD DCT detector, same photos, same run.

An analyst's folder: ``--n-photos`` photographs of which ``--authentic`` are authentic and the
rest forgeries, built by the unseen-photo benchmark from mate-backgrounds' ``nature/`` photos
(``benchmarks/bench_unseen.py``: object-shaped splices and copy-moves, mixed JPEG histories,
256 to 900 px), or ``--photos DIR`` (your own folder). Each method runs as a fresh process
pinned to ``--cores`` CPUs, once on one photo and once on the whole folder:

- **start-up** = the one-photo run's wall time less one photo's cost; **per image** = (folder
  run - one-photo run) / (n - 1); **total** = the folder run (start-up included); **peak RSS**
  of the folder run's process;
- ``weakloc SAM, every image segmented``: ``weakloc localize DIR --out OUT --regions all``, the
  behaviour before segmentation followed the verdict;
- ``weakloc SAM``: the default (``--regions masked``: SAM only on images whose verdict is
  "manipulated");
- ``weakloc SLIC``: ``--segmenter slic``;
- ``DCT``: a Python process writing the normalised pyIFD DCT map of each photo as an 8-bit PNG.

No ``--checkpoint``: the released model (what a new user gets). Then it prints each weakloc
run's seconds per image by stage (its ``run.json``) and checks that the two SAM runs wrote the
same masks and the same ``scores.csv``, byte for byte.

    python benchmarks/bench_localize.py [--n-photos 100] [--authentic 0.7] [--seed 3] [--cores 2]
        [--checkpoint CKPT] [--photos DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DCT_SCRIPT = r"""
import sys
from pathlib import Path
from weakloc.baselines import baseline_map
from weakloc.io import list_images, write_prob
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for p in list_images([src]):
    write_prob(baseline_map("dct", p), out / f"{p.stem}.png")
"""


def timed(cmd: list[str], cores: int) -> tuple[float, float]:
    """``(wall seconds, peak RSS in GB)`` of ``cmd`` run as a fresh process on the first ``cores`` CPUs."""
    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: os.sched_setaffinity(0, range(cores)))
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read()[-3000:]}")
    return wall, usage.ru_maxrss / 2**20  # Linux: KB


def analyst_folder(out: Path, n: int, authentic: float, seed: int, cache: Path) -> list[Path]:
    """``n`` photos (a share ``authentic`` of them authentic) from the unseen-photo benchmark's builder."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_unseen import build_set

    n_auth = round(n * authentic)
    rows = build_set(cache, seed, n - n_auth, n_auth)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in rows:
        src = Path(r["image"])
        dst = out / f"{r['id']}{src.suffix}"
        shutil.copyfile(src, dst)
        paths.append(dst)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-photos", type=int, default=100)
    ap.add_argument("--authentic", type=float, default=0.7, help="share of authentic photos (default 0.7)")
    ap.add_argument("--seed", type=int, default=3, help="the photo set's seed (bench_unseen.py's default runs use 1)")
    ap.add_argument("--photos", help="your own folder instead of the built one")
    ap.add_argument("--checkpoint", help="default: the released model")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--cache", default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "weakloc"))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    from weakloc.io import list_images

    weakloc = str(Path(sys.executable).with_name("weakloc"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.photos:
            photos = list_images([args.photos])
            folder = Path(args.photos)
        else:
            folder = tmp / "photos"
            photos = analyst_folder(folder, args.n_photos, args.authentic, args.seed, Path(args.cache))
        one = tmp / "one"
        one.mkdir()
        shutil.copyfile(photos[0], one / photos[0].name)
        ckpt = ["--checkpoint", args.checkpoint] if args.checkpoint else []
        methods = {
            "weakloc SAM, every image segmented": lambda src, out: [weakloc, "localize", str(src), "--out", str(out),
                                                                    "--regions", "all", *ckpt],
            "weakloc SAM (default)": lambda src, out: [weakloc, "localize", str(src), "--out", str(out),
                                                       "--regions", "masked", *ckpt],
            "weakloc SLIC": lambda src, out: [weakloc, "localize", str(src), "--out", str(out), "--segmenter", "slic",
                                              *ckpt],
            "pyIFD DCT": lambda src, out: [sys.executable, "-c", DCT_SCRIPT, str(src), str(out)],
        }
        n = len(photos)
        print(f"{n} photos ({'your folder' if args.photos else f'{args.authentic:.0%} authentic, seed {args.seed}'}), "
              f"{args.cores} cores, checkpoint: {args.checkpoint or 'the released model'}; "
              f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        results = {}
        for i, (name, cmd) in enumerate(methods.items()):
            t1, _ = timed(cmd(one, tmp / f"one{i}"), args.cores)
            tn, rss = timed(cmd(folder, tmp / f"out{i}"), args.cores)
            per = (tn - t1) / max(n - 1, 1)
            res = {"start_up": t1 - per, "per_image": per, "total": tn, "peak_rss_gb": rss}
            run_json = tmp / f"out{i}" / "run.json"
            if run_json.is_file():
                res["timing"] = json.loads(run_json.read_text())["timing"]
            results[name] = res
            print(f"  {name}: {tn:.1f} s ({os.getloadavg()[0]:.1f} load)", file=sys.stderr)
        same = all((tmp / "out0" / p.name).read_bytes() == p.read_bytes()
                   for p in sorted((tmp / "out1").glob("*_mask.png")))
        same_scores = (tmp / "out0" / "scores.csv").read_bytes() == (tmp / "out1" / "scores.csv").read_bytes()

    print(f"| {n} photos, {args.cores} cores | start-up (s) | per image (s) | total (s) | peak RSS (GB) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['start_up']:.2f} | {r['per_image']:.2f} | {r['total']:.1f} | {r['peak_rss_gb']:.2f} |")
    print("\nweakloc's seconds per image by stage (run.json; wall, stages overlap in threads):\n")
    stages = list(next(r for r in results.values() if "timing" in r)["timing"]["seconds_per_image"])
    print("| run | " + " | ".join(stages) + " | images segmented |")
    print("|---|" + "---:|" * (len(stages) + 1))
    for name, r in results.items():
        if "timing" in r:
            t = r["timing"]
            print(f"| {name} | " + " | ".join(f"{t['seconds_per_image'][s]:.3f}" for s in stages)
                  + f" | {t['images_segmented']} of {t['images_computed']} |")
    before, after = results["weakloc SAM, every image segmented"], results["weakloc SAM (default)"]
    print(f"\nSAM path: {before['per_image']:.2f} -> {after['per_image']:.2f} s per image "
          f"({before['per_image'] / after['per_image']:.2f}x); masks identical: {same}; scores.csv identical: "
          f"{same_scores}; load average {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "results": results, "same_masks": same,
                                               "same_scores": same_scores}, indent=2) + "\n")


if __name__ == "__main__":
    main()
