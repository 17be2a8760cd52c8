"""Peak memory and seconds of `weakloc localize` on one very large photo (issue #32: 40 MP within 4 GB).

Builds a ``--megapixels`` JPEG (default 40: 7744 x 5163, 3:2) by upscaling a real photograph
(scikit-image's ``coffee``, bicubic) and saving it at quality 90, then runs
``weakloc localize PHOTO --out OUT --regions all`` as a fresh process, once per segmenter
(``--segmenters``, default ``slic sam``; SAM needs ``weights/mobile_sam.pt`` relative to the
working directory), and prints each run's wall seconds and peak RSS (``ru_maxrss`` of the child,
``os.wait4``), its seconds by stage (``run.json``) and the written map's size (it must be the
photo's). No ``--checkpoint``: the released model.

``--stages`` also runs the Localizer's stages one by one in a child process and prints the peak
RSS (``VmHWM``) reached after each: where the memory goes.

    python benchmarks/bench_large.py [--megapixels 40] [--segmenters slic sam] [--stages] [--cores 2]
        [--keep DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGE_SCRIPT = r"""
import sys
from weakloc.pipeline import Localizer

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 2**20
def report(stage):
    print(f"{stage}\t{hwm():.2f}", flush=True)

photo, segmenter = sys.argv[1], sys.argv[2]
loc = Localizer(None, segmenters=[segmenter], overrides={"localize.regions": "all"})
_ = loc.segmenters
report("model and segmenter loaded")
img = loc.read(photo)
report("image read")
det = loc.detect(img.stored, img.orientation)
report("detector (SEL, maps) and fusion")
parts = loc.segment(img.shown, det.coarse)
report("regions")
prob = loc.refine(det, parts)
report("refinement and decision")
from weakloc.localize import write_image_outputs
from weakloc.pipeline import Localization
import tempfile, pathlib
res = loc._result(prob, det.score, True, {})
with tempfile.TemporaryDirectory() as d:
    write_image_outputs(pathlib.Path(d), "x", res, img.shown, photo)
report("files written")
"""


def timed(cmd: list[str], cores: int, cwd: Path | None = None) -> tuple[float, float, str]:
    """``(wall seconds, peak RSS in GB, stdout)`` of ``cmd`` run as a fresh process on ``cores`` CPUs."""
    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd,
                                preexec_fn=lambda: os.sched_setaffinity(0, range(cores)))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"failed: {' '.join(cmd)}\n{err.read()[-3000:]}")
        out.seek(0)
        return wall, usage.ru_maxrss / 2**20, out.read()


def large_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """Write a ``megapixels`` 3:2 JPEG (quality 90) upscaled from skimage's ``coffee``; its ``(W, H)``."""
    import numpy as np
    from PIL import Image
    from skimage import data

    h = int(round(math.sqrt(megapixels * 1e6 / 1.5)))
    w = int(round(h * 1.5))
    img = Image.fromarray(np.asarray(data.coffee())).resize((w, h), Image.Resampling.BICUBIC)
    img.save(path, format="JPEG", quality=90)
    return w, h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, default=40.0)
    ap.add_argument("--segmenters", nargs="+", default=["slic", "sam"])
    ap.add_argument("--stages", action="store_true", help="also print the peak RSS after each stage")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the photo and the outputs in this folder")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    args = ap.parse_args()
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    work = args.keep or Path(tempfile.mkdtemp(prefix="weakloc-large-"))
    work.mkdir(parents=True, exist_ok=True)
    photo = work / "large.jpg"
    w, h = large_photo(photo, args.megapixels)
    print(f"photo: {w} x {h} ({w * h / 1e6:.1f} MP), {photo.stat().st_size / 1e6:.1f} MB JPEG q90")
    exe = Path(sys.executable).with_name("weakloc")
    results = {"width": w, "height": h, "runs": {}}
    for seg in args.segmenters:
        out = work / f"out-{seg}"
        cmd = [str(exe), "localize", str(photo), "--out", str(out), "--segmenter", seg, "--regions", "all",
               "--force"]
        wall, rss, _ = timed(cmd, args.cores, cwd=Path.cwd())
        run = json.loads((out / "run.json").read_text())
        stages = run["timing"]["seconds_per_image"]
        with Image.open(out / "large_prob.png") as m:
            size = m.size
        results["runs"][seg] = {"wall_s": round(wall, 1), "peak_rss_gb": round(rss, 2), "stages_s": stages,
                                "map_size": list(size)}
        print(f"{seg}: {wall:.1f} s, peak RSS {rss:.2f} GB, map {size[0]} x {size[1]}"
              f"{'' if size == (w, h) else '  (NOT the photo size)'}; by stage: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
        if args.stages:
            _, _, text = timed([sys.executable, "-c", STAGE_SCRIPT, str(photo), seg], args.cores, cwd=Path.cwd())
            peaks = [line.split("\t") for line in text.splitlines() if "\t" in line]
            results["runs"][seg]["stage_peak_rss_gb"] = {k: float(v) for k, v in peaks}
            for k, v in peaks:
                print(f"    peak RSS after {k}: {float(v):.2f} GB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
