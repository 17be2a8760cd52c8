"""Unseen-photo benchmark: weakloc and the pyIFD detectors on forgeries of photos training never saw.

The photographs are the colour photos in the ``nature/`` folder of Debian's
``mate-backgrounds`` package (GPL-2+, credited in the package's copyright file), fetched with
``apt-get download mate-backgrounds`` and unpacked with ``dpkg -x`` into a cache folder outside
the repository (``~/.cache/weakloc/mate-backgrounds`` by default). No other photo source is
used. From them the script builds, deterministically from ``--seed``:

- **forgeries** with object-shaped regions (adjacent segments of a Felzenszwalb partition
  of the donor photo merged to an object, :mod:`weakloc.datasets.objects`): splices from
  another photo and copy-moves inside the host, with mixed JPEG histories (host never
  compressed, compressed once or twice at qualities 60-95, grid aligned or shifted; the
  pasted content recompressed at another quality and/or on a misaligned grid, or never
  compressed, or resampled; colour matching and feathered borders on some) and a final
  JPEG save at 70-98 or PNG; sizes from 256 to 900 pixels on the longer side, aspect 1, 4:3
  or 3:2 (CASIA-like);
- **authentic photos** with the same global histories.

Then it scores, on the same images in the same run, weakloc (a checkpoint; the variants
named with ``--variants``, see :data:`VARIANT_HELP`) and the pyIFD DCT, BLK and ELA
detectors, and prints one table: F1 at 0.5, IoU, pixel AUC, oracle F1 (best threshold per
image, chosen with the mask: not a method), the mean of flagged / true area on manipulated
images, the mean flagged area on authentic photos, the fraction of authentic photos with
more than 1 % flagged, and seconds per image. Maps are quantised to 8 bits, as
``weakloc localize`` writes them, before scoring.

Per-image stage outputs are cached with their measured times: the image-only ones
(partitions of segmenters that read only the image, keyed by their settings; baseline maps)
in the set's ``stages/`` folder, the checkpoint's (coarse map, image probability, and the
map-prompted partitions) under ``<cache>/unseen/runs/<key>/`` (the key covers the
checkpoint's bytes, the cams and fusion settings and the image set). A rerun with other
refinement or decision settings recomputes nothing; seconds per image are always the times
measured when each stage ran.

    python benchmarks/bench_unseen.py --checkpoint CKPT [--config config.yaml]
        [--n-forged 40] [--n-authentic 20] [--seed 0] [--variants default slic sam ...]
        [--baselines dct blk ela] [--set refine.decision.fraction_b=4 ...] [--json OUT]

Each variant with segmenters goes through :class:`weakloc.pipeline.Localizer`'s ``needs_regions``
and ``refine``, as ``weakloc localize`` does: with ``localize.regions = masked`` (the default) an
image the decision's gate empties is refined with the whole image as its one region and its
segmentation time is not counted; ``--set localize.regions='"all"'`` segments every image.

With ``--manifest M --split val`` the same variants are scored on a seeded subset of a
prepared dataset's validation split instead (``--n-forged`` manipulated images, ``--n-authentic``
authentic ones; the test split is refused): defaults are chosen there and on the unseen set.

It is a benchmark: not part of the default run or the tests.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from weakloc.datasets import synthetic as syn
from weakloc.datasets.objects import ObjectSettings, object_region, photo_partition, view_labels
from weakloc.errors import WeaklocError
from weakloc.intervals import (
    BootstrapSettings,
    detection_intervals,
    localization_intervals,
    percentile_interval,
    resample_indices,
)
from weakloc.io import read_mask, read_rgb, write_mask
from weakloc.metrics import ScoreHistogram, histogram_metrics, image_metrics, summarize_localization

PACKAGE = "mate-backgrounds"
NATURE = Path("usr/share/backgrounds/mate/nature")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "weakloc"
GENERATOR_VERSION = 1
BOOTSTRAP = BootstrapSettings.from_section({})  # the schema's evaluate.bootstrap (2000 resamples, 95 %)

VARIANT_HELP = """variants (segmenters before '/', a decision after it):
  fused              the fused map, no refinement
  default            the config's segmenters.use and refine section (sam, calibrated rule in config.yaml)
  slic, sam, sam_prompt, slic+sam_prompt, ...   those segmenters ('+'-joined)
  <any>/calibrated   the same, then refine.decision.rule = calibrated (other decision keys from the config/--set)"""


# ----------------------------------------------------------------------------- photos


def fetch_photos(cache: Path) -> list[Path]:
    """The colour photographs of mate-backgrounds' nature/ folder, fetched once into ``cache``."""
    root = cache / PACKAGE
    nature = root / "root" / NATURE
    if not nature.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        debs = sorted(root.glob(f"{PACKAGE}_*.deb"))
        if not debs:
            proc = subprocess.run(["apt-get", "download", PACKAGE], cwd=root, capture_output=True, text=True)
            debs = sorted(root.glob(f"{PACKAGE}_*.deb"))
            if not debs:
                raise WeaklocError(f"apt-get download {PACKAGE} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        tmp = tempfile.mkdtemp(dir=root, prefix="unpack-")
        subprocess.run(["dpkg", "-x", str(debs[-1]), tmp], check=True)
        if not (Path(tmp) / NATURE).is_dir():
            raise WeaklocError(f"{debs[-1]}: no {NATURE} folder in the package")
        if (root / "root").exists():  # a partial earlier unpack
            import shutil

            shutil.rmtree(root / "root")
        os.replace(tmp, root / "root")
    photos = []
    for path in sorted(p for p in nature.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        arr = read_rgb(path).astype(np.float32)
        small = arr[::8, ::8]
        if float(np.mean(np.std(small, axis=2))) > 4.0:  # colour, not a grey picture
            photos.append(path)
    if len(photos) < 2:
        raise WeaklocError(f"{nature}: fewer than 2 colour photographs")
    return photos


# ----------------------------------------------------------------------------- forgeries


def _draw_size(rng: np.random.Generator, lo: int = 256, hi: int = 900) -> tuple[int, int]:
    long = int(rng.integers(lo, hi + 1))
    aspect = (1.0, 4 / 3, 3 / 2)[int(rng.integers(0, 3))]
    short = max(lo, int(round(long / aspect)))
    return (long, short) if rng.random() < 0.7 else (short, long)  # (width, height)


def _view(photo: Image.Image, w: int, h: int, rng: np.random.Generator):
    """A random crop of ``photo`` rescaled to ``w x h`` (factor never near 1), maybe mirrored."""
    pw, ph = photo.size
    smax = min(pw / w, ph / h)
    sc = float(rng.uniform(min(smax, 1.2), smax))
    cw, ch = w * sc, h * sc
    x0, y0 = float(rng.uniform(0, pw - cw)), float(rng.uniform(0, ph - ch))
    box = (x0, y0, x0 + cw, y0 + ch)
    arr = np.asarray(photo.resize((w, h), Image.Resampling.BICUBIC, box=box))
    flip = bool(rng.random() < 0.5)
    return np.ascontiguousarray(arr[:, ::-1] if flip else arr), box, flip


def _shift(bbox, h: int, w: int, rng: np.random.Generator, misaligned: bool):
    """A shift moving ``bbox`` (y0, y1, x0, x1) by at least 16 px and keeping it inside."""
    y0, y1, x0, x1 = bbox
    for _ in range(100):
        dy, dx = int(rng.integers(-y0, h - y1 + 1)), int(rng.integers(-x0, w - x1 + 1))
        if max(abs(dy), abs(dx)) < 16:
            continue
        if misaligned == (dy % 8 == 0 and dx % 8 == 0):
            continue
        return dy, dx
    return None


HISTORY = syn.SyntheticSettings.from_section(dict(quality_range=(60, 95), double_fraction=0.3,
                                                  uncompressed_fraction=0.15, host_grid_shift_fraction=0.2))


#: the object regions of the benchmark's forgeries (object-shaped, from a SLIC partition of the donor)
OBJECTS = ObjectSettings(scale=300.0, work_side=1024)


def make_image(index: int, seed: int, n_forged: int, photos, area=(0.01, 0.25), copy_move_fraction=0.4,
               objects: ObjectSettings = OBJECTS, part_cache: Path | None = None):
    """Image ``index`` of the set: ``(bytes, suffix, mask (H, W) bool, label, recipe)``."""
    rng = np.random.default_rng(np.random.SeedSequence([GENERATOR_VERSION, int(seed), int(index)]))
    names, images = photos
    manipulated = index < n_forged
    kind = "authentic"
    if manipulated:
        kind = "copymove" if syn._is_chosen(index, copy_move_fraction) else "splice"
    w, h = _draw_size(rng)
    host_i = int(rng.integers(0, len(images)))
    host_view, host_box, host_flip = _view(images[host_i], w, h, rng)
    host, parts, q_host = syn._history(host_view, rng, HISTORY)
    parts.insert(0, f"photo={names[host_i]} size={w}x{h}")
    mask = np.zeros((h, w), dtype=bool)
    image = host
    if manipulated:
        misaligned = bool(rng.random() < 0.65)
        for attempt in range(40):
            # a photo whose segments are all too large (sky, bark) is re-partitioned finer
            objects_now = ObjectSettings(scale=objects.scale / 2 ** (attempt // 10), sigma=objects.sigma,
                                         min_size=objects.min_size, work_side=objects.work_side)
            target = math.exp(rng.uniform(math.log(area[0]), math.log(area[1])))
            if kind == "splice":
                donor_i = [i for i in range(len(images)) if i != host_i][int(rng.integers(0, len(images) - 1))]
                view, box, flip = _view(images[donor_i], w, h, rng)
                src_i = donor_i
            else:
                view, box, flip, src_i = host_view, host_box, host_flip, host_i
            labels = view_labels(photo_partition(images[src_i], objects_now, part_cache), images[src_i].size, box,
                                 (w, h), flip)
            region = object_region(labels, view, target, area, rng)
            if region is None:
                continue
            if kind == "copymove":
                ys, xs = np.nonzero(region)
                sh = _shift((ys.min(), ys.max() + 1, xs.min(), xs.max() + 1), h, w, rng, misaligned or q_host is None)
                if sh is None:
                    continue
            break
        else:
            raise WeaklocError(f"bench image {index}: no object region fits {area}")
        if kind == "splice":
            content = view
            if q_host is not None and rng.random() < 0.25:
                parts.append(f"splice donor={names[donor_i]} uncompressed")
            else:
                gap = 0 if (misaligned and rng.random() < 0.5) else 8
                q2 = syn._quality_apart(rng, 55, 95, q_host, gap)
                off = syn._random_offset(rng) if misaligned else (0, 0)
                content = syn.jpeg_roundtrip(view, q2, off, 2 if rng.random() < 0.75 else 0)
                parts.append(f"splice donor={names[donor_i]} q2={q2} grid={off[0]}x{off[1]}")
            if rng.random() < 0.3:
                content = syn._colour_adjust(content, rng, 0.15)
                parts.append("colour-matched")
        else:
            dy, dx = sh
            region = np.roll(region, (dy, dx), axis=(0, 1))
            content = np.roll(host, (dy, dx), axis=(0, 1))
            parts.append(f"copymove shift={dy}x{dx}")
            if q_host is None or (dy % 8 == 0 and dx % 8 == 0):
                if q_host is None or rng.random() < 0.5:
                    q2 = syn._quality_apart(rng, 55, 95, q_host, 8)
                    off = syn._random_offset(rng) if q_host is None else (0, 0)
                    content = syn.jpeg_roundtrip(content, q2, off)
                    parts.append(f"copy q2={q2} grid={off[0]}x{off[1]}")
                else:
                    ys, xs = np.nonzero(region)
                    content = syn._resample_patch(content, (float(ys.mean()), float(xs.mean())), rng)
                    parts.append("copy resampled")
        image = np.where(region[..., None], content, host)
        if rng.random() < 0.3:
            from scipy.ndimage import gaussian_filter

            sigma = float(rng.uniform(0.6, 1.5))
            alpha = gaussian_filter(region.astype(np.float32), sigma)
            if (alpha >= 0.5).any():
                image = np.clip(host * (1 - alpha[..., None]) + content * alpha[..., None] + 0.5,
                                0, 255).astype(np.uint8)
                region = alpha >= 0.5
                parts.append(f"feather={sigma:.2f}")
        mask = region
        parts.append(f"object area={mask.mean():.4f}")
    else:
        parts.append("authentic")
    if rng.random() < 0.1:
        image = syn._colour_adjust(image, rng, 0.1)
        parts.append("global-adjust")
    buf = io.BytesIO()
    if rng.random() < 0.2:
        Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=6)
        suffix = ".png"
        parts.append("final=png")
    else:
        q3 = int(rng.integers(70, 99))
        sub = 2 if rng.random() < 0.7 else 0
        Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=q3, subsampling=sub)
        suffix = ".jpg"
        parts.append(f"final=jpeg q3={q3} sub={'420' if sub else '444'}")
    return buf.getvalue(), suffix, mask, int(manipulated), "; ".join(parts)


def build_set(cache: Path, seed: int, n_forged: int, n_authentic: int) -> list[dict]:
    """Write (or reuse) the benchmark's images and masks; returns ``[{id, label, image, mask, source}]``."""
    paths = fetch_photos(cache)
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.name.encode())
        digest.update(hashlib.sha256(p.read_bytes()).digest())
    key = hashlib.sha256(json.dumps({"v": GENERATOR_VERSION, "seed": seed, "forged": n_forged,
                                     "authentic": n_authentic, "photos": digest.hexdigest()}).encode()).hexdigest()[:12]
    out = cache / "unseen" / f"set-{key}"
    index = out / "index.json"
    if index.is_file():
        return json.loads(index.read_text())
    photos = ([p.name for p in paths], [Image.fromarray(read_rgb(p)) for p in paths])
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_forged + n_authentic):
        data, suffix, mask, label, recipe = make_image(i, seed, n_forged, photos,
                                                       part_cache=cache / "unseen" / "partitions")
        sid = f"unseen{i:04d}"
        (out / "images" / f"{sid}{suffix}").write_bytes(data)
        write_mask(mask, out / "masks" / f"{sid}.png")
        rows.append({"id": sid, "label": label, "image": str(out / "images" / f"{sid}{suffix}"),
                     "mask": str(out / "masks" / f"{sid}.png"), "source": recipe})
        print(f"\rbuilding the unseen set: {i + 1}/{n_forged + n_authentic}", end="", file=sys.stderr)
    print(file=sys.stderr)
    index.write_text(json.dumps(rows, indent=1))
    return rows


# ----------------------------------------------------------------------------- scoring


def manifest_rows(manifest: str, split: str, seed: int, n_forged: int, n_authentic: int) -> list[dict]:
    """A seeded subset of a prepared dataset's ``split`` (never ``test``): ``n_forged``
    manipulated images with a mask and ``n_authentic`` authentic ones, as :func:`build_set`'s rows."""
    from weakloc.manifest import read_manifest

    if split == "test":
        raise WeaklocError(f"{manifest}: defaults are chosen on the validation split, never on the test split")
    df = read_manifest(manifest, split=split)
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in ((1, n_forged), (0, n_authentic)):
        pool = df[(df["label"] == label) & (df["mask"] != "")]
        if len(pool) < n:
            raise WeaklocError(f"{manifest}: split {split!r} has {len(pool)} images of label {label}, {n} asked for")
        pick = pool.iloc[np.sort(rng.choice(len(pool), n, replace=False))]
        rows += [{"id": r.id, "image": r.image, "mask": r.mask, "label": int(r.label)} for r in pick.itertuples()]
    return rows


def _rows_key(rows: list[dict]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row['id']}\0{row['label']}\0".encode())
        digest.update(hashlib.sha256(Path(row["image"]).read_bytes()).digest())
    return digest.hexdigest()[:12]


def _q8(p: np.ndarray) -> np.ndarray:
    """A map as ``weakloc localize`` writes it (8 bits), read back."""
    return (np.clip(np.rint(np.asarray(p, dtype=np.float64) * 255.0), 0, 255) / 255.0).astype(np.float32)


def _hist8(h: ScoreHistogram) -> list[list[int]]:
    """``[pos, neg]`` counts per grey level 0..255 of an 8-bit map's histogram."""
    levels = np.rint(h.values * 255).astype(np.intp)
    pos, neg = np.zeros(256, np.int64), np.zeros(256, np.int64)
    np.add.at(pos, levels, h.pos)
    np.add.at(neg, levels, h.neg)
    return [pos.tolist(), neg.tolist()]


class Scores:
    """Accumulates one method's numbers over the set."""

    def __init__(self):
        self.hists, self.ratios, self.auth_flagged, self.seconds = [], [], [], []
        self.labels, self.image_scores = [], []

    def add(self, prob: np.ndarray, gt: np.ndarray, label: int, seconds: float,
            image_score: float | None = None) -> None:
        p = _q8(prob)
        flagged = p > 0.5
        if label:
            self.hists.append(ScoreHistogram.from_maps(p, gt))
            self.ratios.append(float(flagged.sum()) / max(int(gt.sum()), 1))
        else:
            self.auth_flagged.append(float(flagged.mean()))
        self.seconds.append(seconds)
        if image_score is not None:
            self.labels.append(int(label))
            self.image_scores.append(float(image_score))

    def row(self) -> dict:
        """The table's numbers, with 95 % bootstrap intervals over the images (weakloc.intervals)."""
        s = summarize_localization(self.hists, 0.5)
        per_image, _ = localization_intervals(self.hists, 0.5, BOOTSTRAP)
        a = np.asarray(self.auth_flagged)
        image_auc = image_auc_interval = None
        if len(self.labels) == len(self.seconds) and 0 < sum(self.labels) < len(self.labels):
            image_auc = image_metrics(self.labels, self.image_scores)["auc"]
            image_auc_interval = detection_intervals(self.labels, self.image_scores, 0.5, BOOTSTRAP)["auc"]
        idx = resample_indices(a.size, BOOTSTRAP) if a.size else None
        return {"f1": s["f1"], "f1_interval": per_image["f1"], "iou": s["iou"], "auc": s["auc"],
                "oracle_f1": s["best_f1"], "image_auc": image_auc, "image_auc_interval": image_auc_interval,
                "area_ratio": float(np.mean(self.ratios)) if self.ratios else None,
                "auth_flagged": float(a.mean()) if a.size else None,
                "auth_flagged_interval": percentile_interval(a[idx].mean(axis=1), BOOTSTRAP.level) if a.size else None,
                "auth_over_1pct": float(np.mean(a > 0.01)) if a.size else None,
                "auth_over_1pct_interval": (percentile_interval((a[idx] > 0.01).mean(axis=1), BOOTSTRAP.level)
                                            if a.size else None),
                "sec_per_image": float(np.mean(self.seconds)) if self.seconds else None,
                "n_manipulated": len(self.hists), "n_authentic": int(a.size),
                # in the set's order, for paired comparisons of two runs (benchmarks/paired.py)
                "f1_per_image": [histogram_metrics(h, 0.5)["f1"] if h.n_pos > 0 else None for h in self.hists],
                # each forgery's 8-bit map as (pos, neg) pixel counts per grey level: pooled pixel AUC, paired
                "hist8_per_image": [_hist8(h) for h in self.hists],
                # every image's label and image score, in the set's order: paired image AUC
                "labels_per_image": list(self.labels), "image_score_per_image": list(self.image_scores),
                "auth_flagged_per_image": a.tolist()}


def _set_key(config: dict, dotted: str, value) -> None:
    node = config
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def parse_variant(spec: str, config: dict) -> tuple[list[str], bool]:
    """``(segmenters, calibrated)`` of a variant name (see :data:`VARIANT_HELP`)."""
    segs, _, decision = spec.partition("/")
    if decision not in ("", "calibrated"):
        raise WeaklocError(f"variant {spec!r}: unknown decision {decision!r} (only 'calibrated')")
    if segs == "fused":
        names = []
    elif segs == "default":
        names = list(config["segmenters"]["use"])
    else:
        names = segs.split("+")
    return names, decision == "calibrated"


def run(args) -> dict:
    import torch

    from weakloc.baselines import baseline_map
    from weakloc.cams import block_maps
    from weakloc.config import load_config, validate_config
    from weakloc.decision import DecisionSettings, calibrated_map, with_rule
    from weakloc.fusion import fuse_with_config
    from weakloc.pipeline import Detection, Localizer
    from weakloc.segmenters import MAP_PROMPTED, build_segmenter
    from weakloc.wcbnet import load_checkpoint

    torch.set_num_threads(args.threads)
    cache = Path(args.cache).expanduser()
    if args.manifest:
        rows = manifest_rows(args.manifest, args.split, args.seed, args.n_forged, args.n_authentic)
    else:
        rows = build_set(cache, args.seed, args.n_forged, args.n_authentic)

    config = load_config(args.config) if args.config else validate_config({})
    config = copy.deepcopy(config)
    for item in args.set or []:
        key, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        _set_key(config, key, value)
    if args.sam_checkpoint:
        for name in ("sam", "sam_prompt"):
            config["segmenters"].setdefault(name, {})["checkpoint"] = str(args.sam_checkpoint)
    config = validate_config(config, source="bench config")
    fusion = config["fusion"]["methods"][0]
    variants = [(v, *parse_variant(v, config)) for v in args.variants]
    seg_names = sorted({n for _, names, _ in variants for n in names})

    set_dir = Path(rows[0]["image"]).parent.parent
    if args.manifest:  # the stages of a manifest split's images live in the cache, keyed by their bytes
        set_dir = cache / "unseen" / f"{args.split}-{_rows_key(rows)}"
    ckpt_sha = hashlib.sha256(Path(args.checkpoint).read_bytes()).hexdigest() if args.checkpoint else None
    seg_cfg = {n: config["segmenters"].get(n, {}) for n in seg_names}
    run_key = hashlib.sha256(json.dumps({"ckpt": ckpt_sha, "cams": config["cams"], "fusion": config["fusion"],
                                         "set": set_dir.name}, sort_keys=True).encode()).hexdigest()[:12]
    # checkpoint-independent stages (image-only partitions, baselines) live beside the set;
    # the checkpoint's maps and what is prompted by them, under runs/<key>
    shared_dir = set_dir / "stages"
    run_dir = cache / "unseen" / "runs" / run_key
    shared_dir.mkdir(parents=True, exist_ok=True)
    if args.checkpoint:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "set.txt").write_text(str(set_dir) + "\n")

    def seg_key(name):
        return "part_" + name + "_" + hashlib.sha256(json.dumps(seg_cfg[name], sort_keys=True).encode()).hexdigest()[:8]

    def load(path):
        return dict(np.load(path, allow_pickle=False)) if path.is_file() else {}

    def save(path, data):
        with open(path.with_suffix(".tmp"), "wb") as fh:
            np.savez_compressed(fh, **data)
        os.replace(path.with_suffix(".tmp"), path)

    model = meta = threshold = None
    if args.checkpoint:  # the operating point, for refine.decision.gate = verdict (weakloc.operating_point)
        from weakloc.operating_point import operating_point

        model, meta = load_checkpoint(args.checkpoint)
        threshold = operating_point(meta)[0]
    segmenters: dict = {}
    results = {v: Scores() for v, _, _ in variants} if args.checkpoint else {}
    baselines = {b: Scores() for b in args.baselines}
    calib_cfg = with_rule(config["refine"], "calibrated")
    pipes = {}  # each variant's pipeline (weakloc.pipeline): which images it segments, and its refinement
    for vname, names, calibrated in variants:
        if args.checkpoint and names:
            cfg_v = {**config, "refine": calib_cfg} if calibrated else config
            pipes[vname] = Localizer.from_model(model, meta, cfg_v, segmenters=names)
    t_all = time.perf_counter()
    for n, row in enumerate(rows):
        rgb = read_rgb(row["image"])
        gt = read_mask(row["mask"])
        shared_file, run_file = shared_dir / f"{row['id']}.npz", run_dir / f"{row['id']}.npz"
        shared, own = load(shared_file), load(run_file)
        changed = set()
        if args.checkpoint and "coarse" not in own:
            if model is None:
                model, meta = load_checkpoint(args.checkpoint)
            t = time.perf_counter()
            bm = block_maps(model, meta, rgb, config["cams"]["method"], config["cams"]["max_side"])
            coarse = fuse_with_config(bm.maps, fusion, bm.weights, config)
            own.update(coarse=coarse.astype(np.float32), prob=np.float32(bm.prob),
                       t_cams=np.float64(time.perf_counter() - t))
            changed.add("own")
        for name in seg_names:
            key = seg_key(name)
            prompted = name in MAP_PROMPTED
            store = own if prompted else shared
            if key in store or (prompted and not args.checkpoint):
                continue
            if name not in segmenters:
                segmenters[name] = build_segmenter(name, config["segmenters"].get(name, {}))
            seg = segmenters[name]
            t = time.perf_counter()
            part = seg(rgb, own["coarse"]) if prompted else seg(rgb)
            store[key] = part.astype(np.int32)
            store["t_" + key] = np.float64(time.perf_counter() - t)
            changed.add("own" if prompted else "shared")
        for b in args.baselines:
            key = f"base_{b}"
            if key not in shared:
                t = time.perf_counter()
                bmap = baseline_map(b, row["image"])
                shared[key] = np.rint(bmap * 255).astype(np.uint8)
                shared["t_" + key] = np.float64(time.perf_counter() - t)
                changed.add("shared")
            baselines[b].add(shared[key].astype(np.float32) / 255.0, gt, row["label"], float(shared["t_" + key]))
        if "own" in changed:
            save(run_file, own)
        if "shared" in changed:
            save(shared_file, shared)
        if args.checkpoint:
            coarse, image_prob = own["coarse"], float(own["prob"])
            for vname, names, calibrated in variants:
                secs = float(own["t_cams"])
                if not names and not calibrated:
                    results[vname].add(coarse, gt, row["label"], secs, image_prob)
                    continue
                parts = None  # localize.regions = masked: only the images that can get a mask are segmented
                if names and pipes[vname].needs_regions(image_prob):
                    parts = []
                    for nm in names:
                        store = own if nm in MAP_PROMPTED else shared
                        parts.append(store[seg_key(nm)])
                        secs += float(store["t_" + seg_key(nm)])
                t = time.perf_counter()
                if names:
                    prob = pipes[vname].refine(Detection(image_prob, None, coarse), parts)
                else:  # fused/calibrated: the decision on the fused map, grey-level units
                    d = DecisionSettings.from_section({**config["refine"]["decision"], "rule": "calibrated",
                                                      "unit": "pixel"})
                    prob = calibrated_map(coarse, None, image_prob, d, threshold)
                secs += time.perf_counter() - t
                results[vname].add(prob, gt, row["label"], secs, image_prob)
        print(f"\rscoring: {n + 1}/{len(rows)} images ({time.perf_counter() - t_all:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    table = {f"weakloc {v}": s.row() for v, s in results.items()}
    table.update({f"pyIFD {b.upper()}": s.row() for b, s in baselines.items()})
    source = f"{args.manifest}, split {args.split}" if args.manifest else "mate-backgrounds nature/"
    return {"images": len(rows), "source": source, "n_forged": args.n_forged, "n_authentic": args.n_authentic,
            "seed": args.seed,
            "checkpoint": str(args.checkpoint), "checkpoint_sha256": ckpt_sha, "threads": args.threads,
            "set": [s for s in (args.set or [])], "decision": config["refine"].get("decision"),
            "operating_point": threshold, "table": table}


def format_table(result: dict) -> str:
    def f(v, pct=False, digits=3):
        if v is None:
            return "n/a"
        return f"{100 * v:.1f} %" if pct else f"{v:.{digits}f}"

    def iv(r, key, pct=False):
        bounds = r.get(f"{key}_interval")
        value = f(r.get(key), pct)
        return value if not bounds else f"{value} [{f(bounds[0], pct)}, {f(bounds[1], pct)}]"

    lines = ["| method | F1@0.5 | IoU | pixel AUC | oracle F1* | image AUC | flagged/true area | "
             "flagged on authentic | authentic >1 % flagged | s/image |", "|---" + "|---:" * 9 + "|"]
    for name, r in result["table"].items():
        lines.append(f"| {name} | {iv(r, 'f1')} | {f(r['iou'])} | {f(r['auc'])} | {f(r['oracle_f1'])} | "
                     f"{iv(r, 'image_auc')} | {f(r['area_ratio'], digits=2)}x | {iv(r, 'auth_flagged', True)} | "
                     f"{iv(r, 'auth_over_1pct', True)} | "
                     f"{f(r['sec_per_image'], digits=2)} |")
    n = next(iter(result["table"].values()))
    lines.append(f"\n{n['n_manipulated']} forgeries + {n['n_authentic']} authentic images "
                 f"({result.get('source', 'mate-backgrounds nature/')}, "
                 f"seed {result['seed']}); [low, high] = 95 % bootstrap interval over the images; image AUC = "
                 f"WCBnet's image score (the baselines give none); "
                 f"*oracle F1 = best threshold per image chosen with the mask (not a method). "
                 f"s/image = sum of the stages a method uses ({result['threads']} torch threads).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=VARIANT_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="WCBnet checkpoint (weakloc train); without one only the image-only "
                    "stages (partitions, baselines) are computed and the baselines scored")
    ap.add_argument("--config", default="config.yaml", help="study config (default config.yaml; '' = schema defaults)")
    ap.add_argument("--manifest", help="instead of the unseen photos: a prepared dataset's manifest (with --split)")
    ap.add_argument("--split", default="val", help="the manifest's split (val; test is refused)")
    ap.add_argument("--n-forged", type=int, default=40)
    ap.add_argument("--n-authentic", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["default", "slic", "sam", "fused"])
    ap.add_argument("--baselines", nargs="*", default=["dct", "blk", "ela"])
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (JSON value), repeatable")
    ap.add_argument("--sam-checkpoint", help="MobileSAM weights (else the config's; `weakloc weights mobile-sam`)")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help=f"cache folder (default {DEFAULT_CACHE})")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the result as JSON here")
    args = ap.parse_args()
    try:
        result = run(args)
    except WeaklocError as exc:
        sys.exit(f"bench_unseen: {exc}")
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
