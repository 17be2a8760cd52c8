"""Resume of `weakloc localize` on a large folder: SIGKILL at random moments, then the bytes compared.

Builds ``--n-photos`` photos (``--authentic`` of them authentic) with the unseen-photo
benchmark's builder (mate-backgrounds' ``nature/`` photos, 256 to 900 px), then:

1. runs ``weakloc localize DIR --out CLEAN`` once, uninterrupted (its wall time ``T``);
2. runs the same command into ``OUT`` and kills it with SIGKILL at a moment drawn uniformly while
   that run is computing images (after its start-up, before the images it has left would be
   done at the uninterrupted pace), ``--kills`` times (each rerun resumes the last); then lets a
   last rerun finish;
3. compares every file of ``OUT`` with ``CLEAN`` byte for byte (``run.json`` and ``index.html``
   without their ``timing``, which describes each run itself) and prints the peak RSS of each
   process (its own ``ru_maxrss``).

Default options pass ``--segmenter slic`` to keep the run short; resume does not depend on the
segmenter (``--localize-args=`` runs the default SAM pipeline; an option value that starts with
``-`` needs the ``=`` form).

    python benchmarks/bench_resume.py [--n-photos 500] [--kills 3] [--seed 5] [--localize-args="--no-refine"]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], kill_after: float | None = None) -> tuple[float, float, bool]:
    """``(wall seconds, peak RSS GB, killed)`` of ``cmd``; SIGKILL after ``kill_after`` seconds if still running."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    while True:  # os.wait4 reaps the child itself, so its own resource usage is read (Popen.poll would lose it)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if kill_after is not None else 0)
        if pid:
            break
        if time.perf_counter() - t >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if not killed and code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}")
    return time.perf_counter() - t, usage.ru_maxrss / 2**20, killed


def folder_bytes(out: Path) -> dict[str, bytes]:
    """Every file of a localize folder (records included); run.json and index.html without timings."""
    files = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        name = str(p.relative_to(out))
        if name == "run.json":
            run_json = json.loads(p.read_text())
            run_json.pop("timing")
            files[name] = json.dumps(run_json, sort_keys=True).encode()
        elif name == "index.html":
            text = p.read_text()
            files[name] = (text[:text.index("<dt>time</dt>")] + text[text.index("<dt>weakloc</dt>"):]).encode()
        elif name.startswith(".weakloc/"):
            record = json.loads(p.read_text())
            record.pop("seconds")
            files[name] = json.dumps(record, sort_keys=True).encode()
        else:
            files[name] = p.read_bytes()
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-photos", type=int, default=500)
    ap.add_argument("--authentic", type=float, default=0.7)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--localize-args", default="--segmenter slic")
    ap.add_argument("--cache", default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "weakloc"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_localize import analyst_folder

    weakloc = str(Path(sys.executable).with_name("weakloc"))
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = analyst_folder(tmp / "photos", args.n_photos, args.authentic, args.seed, Path(args.cache))
        extra = shlex.split(args.localize_args)

        def cmd(out):
            return [weakloc, "localize", str(tmp / "photos"), "--out", str(tmp / out), *extra]

        wall, rss, _ = run(cmd("clean"))
        print(f"{len(photos)} photos, options {args.localize_args or '(defaults)'}; uninterrupted: {wall:.0f} s, "
              f"peak RSS {rss:.2f} GB", file=sys.stderr)
        startup, rss_rerun, _ = run(cmd("clean"))  # every image done: start-up and the resume check
        lines = [("uninterrupted", wall, rss, len(photos)),
                 ("rerun of the finished folder", startup, rss_rerun, len(photos))]
        for k in range(args.kills):
            done = len(list((tmp / "out" / ".weakloc").glob("*.json"))) if (tmp / "out").is_dir() else 0
            # a random moment while images of this run are being computed
            at = startup + rng.uniform(0.05, 0.95) * (wall - startup) * (len(photos) - done) / len(photos)
            w, r, killed = run(cmd("out"), kill_after=at)
            done = len(list((tmp / "out" / ".weakloc").glob("*.json")))
            lines.append((f"kill {k + 1} at {at:.0f} s" + ("" if killed else " (finished first)"), w, r, done))
        w, r, _ = run(cmd("out"))
        lines.append(("final rerun", w, r, len(list((tmp / "out" / ".weakloc").glob("*.json")))))
        clean, out = folder_bytes(tmp / "clean"), folder_bytes(tmp / "out")
        differ = sorted(n for n in clean.keys() | out.keys() if clean.get(n) != out.get(n))
    print("| run | wall (s) | peak RSS (GB) | images done after it |\n|---|---:|---:|---:|")
    for name, w, r, done in lines:
        print(f"| {name} | {w:.0f} | {r:.2f} | {done} |")
    print(f"\n{len(clean)} files compared with the uninterrupted run: "
          + ("all identical" if not differ else f"{len(differ)} differ: {', '.join(differ[:10])}"))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
