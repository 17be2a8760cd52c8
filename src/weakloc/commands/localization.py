"""weakloc sub-commands: localization (METHOD.md steps 3, 4 and 6, and ``localize`` end to end).

- ``weakloc cams --manifest M --split test --checkpoint CKPT --out DIR``: ``DIR/block{b}/{id}.png``
  for b = 1..B and ``DIR/blocks.csv`` (``id,label,score,w1..wB``).
- ``weakloc fuse --cams DIR --method NAME --out DIR2``: ``DIR2/{id}.png``.
- ``weakloc refine --fused DIR --segments DIR [DIR ...] --cams DIR --out DIR3``: ``DIR3/{id}.png``.
- ``weakloc localize INPUT... --checkpoint CKPT --out DIR [--segmenter NAME ...] [--fusion NAME]``: per
  image ``<id>_prob.png``, ``_mask.png``, ``_overlay.jpg``, ``_photo.jpg``; ``scores.csv``, ``run.json`` and
  the gallery ``index.html`` (:mod:`weakloc.localize`, :mod:`weakloc.gallery`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from weakloc.commands import add_config_options, add_manifest_options, config_from_args
from weakloc.commands.shards import add_shard_option
from weakloc.errors import WeaklocError
from weakloc.shards import parse_shard, shard_items
from weakloc.io import atomic_path, inside, orient_array, read_prob, read_rgb_stored, write_prob

BLOCKS_CSV = "blocks.csv"


def _read_blocks_csv(cams_dir: Path) -> pd.DataFrame:
    path = cams_dir / BLOCKS_CSV
    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except FileNotFoundError:
        raise WeaklocError(f"{path}: not found (run `weakloc cams` first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise WeaklocError(f"{path}: not a readable CSV ({exc})") from None
    wcols = [c for c in df.columns if c.startswith("w") and c[1:].isdigit()]
    if "id" not in df.columns or "score" not in df.columns or not wcols:
        raise WeaklocError(f"{path}: needs columns id, score and w1..wB, has {', '.join(df.columns)}")
    return df


def _weight_columns(df: pd.DataFrame) -> list[str]:
    return sorted((c for c in df.columns if c.startswith("w") and c[1:].isdigit()), key=lambda c: int(c[1:]))


def _read_block_maps(cams_dir: Path, image_id: str, n_blocks: int) -> np.ndarray:
    return np.stack([read_prob(cams_dir / f"block{b}" / f"{image_id}.png") for b in range(1, n_blocks + 1)])


def run_cams(args: argparse.Namespace) -> int:
    """Per-block maps of a split, resumable: a killed run keeps the images it had finished."""
    import json

    import torch

    from weakloc.cams import block_maps
    from weakloc.io import file_sha256, resumable_dir
    from weakloc.manifest import content_hash, read_manifest
    from weakloc.wcbnet import load_checkpoint

    config = config_from_args(args)
    df = read_manifest(args.manifest, split=args.split)
    if df.empty:
        raise WeaklocError(f"{args.manifest}: no images in split {args.split!r}")
    df = shard_items(df, parse_shard(args.shard))  # --shard I/N: this job's images only
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta = load_checkpoint(args.checkpoint, map_location=device)
    B = model.n_blocks
    fingerprint = {"step": "cams", "cams": config["cams"], "split": args.split, "data": content_hash(df),
                   "checkpoint": file_sha256(args.checkpoint)}
    columns = ["id", "label", "score"] + [f"w{b + 1}" for b in range(B)]
    with resumable_dir(args.out, fingerprint) as work:
        rows_dir = work / ".rows"  # one JSON row per finished image; blocks.csv is built from them
        done = sum(inside(rows_dir, f"{r}.json").is_file() for r in df["id"])
        if done:
            print(f"cams: resuming, {done} of {len(df)} images already done", file=sys.stderr)
        for row in tqdm(df.itertuples(index=False), total=len(df), desc="cams", unit="img", file=sys.stderr):
            row_file = inside(rows_dir, f"{row.id}.json")
            if row_file.is_file():
                continue
            # the detector reads the pixels as stored (a JPEG's own grid); the maps are turned to
            # the displayed orientation, the one masks are drawn on (docs/localization.md)
            stored, orientation = read_rgb_stored(row.image)
            bm = block_maps(model, meta, stored, config["cams"]["method"], config["cams"]["max_side"])
            for b in range(B):
                write_prob(orient_array(bm.maps[b], orientation), inside(work / f"block{b + 1}", f"{row.id}.png"))
            record = {"id": row.id, "label": int(row.label), "score": round(bm.prob, 6),
                      **{f"w{b + 1}": round(float(bm.weights[b]), 6) for b in range(B)}}
            with atomic_path(row_file) as tmp:  # last: its presence means the image is complete
                tmp.write_text(json.dumps(record), encoding="utf-8")
        rows = [json.loads(inside(rows_dir, f"{r}.json").read_text(encoding="utf-8")) for r in df["id"]]
        with atomic_path(work / BLOCKS_CSV) as tmp:
            pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)
        for f in rows_dir.iterdir():
            f.unlink()
        rows_dir.rmdir()
    return 0


def run_fuse(args: argparse.Namespace) -> int:
    from weakloc.fusion import FUSION_METHODS, fuse_with_config

    config = config_from_args(args)
    if args.method not in FUSION_METHODS:
        raise WeaklocError(f"unknown fusion method {args.method!r} (choose from {', '.join(FUSION_METHODS)})")
    cams_dir, out = Path(args.cams), Path(args.out)
    df = shard_items(_read_blocks_csv(cams_dir), parse_shard(args.shard))  # --shard I/N: this job's images only
    wcols = _weight_columns(df)
    out.mkdir(parents=True, exist_ok=True)
    for row in tqdm(df.to_dict("records"), desc=f"fuse {args.method}", unit="img", file=sys.stderr):
        maps = _read_block_maps(cams_dir, row["id"], len(wcols))
        weights = np.array([row[c] for c in wcols], dtype=np.float64)
        write_prob(fuse_with_config(maps, args.method, weights, config), inside(out, f"{row['id']}.png"))
    return 0


def run_refine(args: argparse.Namespace) -> int:
    from weakloc.refinement import refine_with_config
    from weakloc.segmenters import load_partition

    config = config_from_args(args)
    fused_dir, cams_dir, out = Path(args.fused), Path(args.cams), Path(args.out)
    seg_dirs = [Path(d) for d in args.segments]
    df = shard_items(_read_blocks_csv(cams_dir), parse_shard(args.shard))  # --shard I/N: this job's images only
    wcols = _weight_columns(df)
    needs_blocks = config["refine"].get("evidence") == "map"
    out.mkdir(parents=True, exist_ok=True)
    for row in tqdm(df.to_dict("records"), desc="refine", unit="img", file=sys.stderr):
        image_id = row["id"]
        coarse = read_prob(fused_dir / f"{image_id}.png")
        partitions = [load_partition(d / f"{image_id}.npz") for d in seg_dirs]
        for d, p in zip(seg_dirs, partitions):
            if p.shape != coarse.shape:
                raise WeaklocError(f"{d / (image_id + '.npz')}: partition {p.shape} does not match "
                                   f"the fused map {coarse.shape}")
        blocks = _read_block_maps(cams_dir, image_id, len(wcols)) if needs_blocks else None
        refined = refine_with_config(coarse, partitions, config["refine"], image_prob=float(row["score"]),
                                     block_maps=blocks)
        write_prob(refined, inside(out, f"{image_id}.png"))
    return 0


def run_localize(args: argparse.Namespace) -> int:
    from weakloc.localize import localize_images

    config = config_from_args(args)
    if args.segment_max_side is not None:
        if args.segment_max_side < 16:
            raise WeaklocError(f"--segment-max-side must be at least 16, got {args.segment_max_side}")
        config["localize"]["segment_max_side"] = args.segment_max_side
    if args.threads is not None and args.threads < 1:
        raise WeaklocError(f"--threads must be at least 1, got {args.threads}")
    segmenters = [] if args.no_refine else (args.segmenter or None)
    result = localize_images(args.inputs, args.checkpoint, args.out, config, segmenters=segmenters,
                             fusion=args.fusion, threads=args.threads)
    n_ok, n_bad = len(result.rows), len(result.failures)
    print(f"weakloc localize: {n_ok} image(s) written to {args.out}"
          + (f", {n_bad} failed" if n_bad else "") + f"; gallery: {Path(args.out) / 'index.html'}", file=sys.stderr)
    return 1 if n_bad else 0


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = subparsers.add_parser("cams", help="per-block activation maps of a manifest split (step 3)")
    add_manifest_options(p, "run")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="WCBnet checkpoint")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: block{b}/{id}.png and blocks.csv")
    add_shard_option(p)
    add_config_options(p, sections=('cams',))
    p.set_defaults(func=run_cams)

    p = subparsers.add_parser("fuse", help="fuse the per-block maps into coarse maps (step 4)")
    p.add_argument("--cams", required=True, metavar="DIR", help="output folder of `weakloc cams`")
    p.add_argument("--method", required=True, metavar="NAME", help="attention, mean, max or wavelet")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: {id}.png")
    add_shard_option(p)
    add_config_options(p, sections=('fusion',))
    p.set_defaults(func=run_fuse)

    p = subparsers.add_parser("refine", help="Bayesian refinement of fused maps with segment regions (step 6)")
    p.add_argument("--fused", required=True, metavar="DIR", help="output folder of `weakloc fuse`")
    p.add_argument("--segments", required=True, nargs="+", metavar="DIR",
                   help="one or more `weakloc segment` folders ({id}.npz); several combine as independent evidence")
    p.add_argument("--cams", required=True, metavar="DIR",
                   help="output folder of `weakloc cams` (image ids, image probabilities, block maps)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: {id}.png")
    add_shard_option(p)
    add_config_options(p, sections=('refine',))
    p.set_defaults(func=run_refine)

    p = subparsers.add_parser("localize", help="localize manipulated regions in image files or folders, end to end "
                               "(maps, masks, scores.csv with verdicts, a gallery index.html)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (not recursive)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="WCBnet checkpoint")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--segmenter", action="extend", nargs="+", metavar="NAME",
                   help="segmenter(s) for the refinement, e.g. --segmenter slic sam (default slic)")
    p.add_argument("--no-refine", action="store_true", help="write the fused map without refinement")
    p.add_argument("--fusion", metavar="NAME", help="fusion method (default: the first of fusion.methods)")
    p.add_argument("--segment-max-side", type=int, metavar="N",
                   help="segment at most N pixels on the longer side and map the regions back (faster, coarser "
                        "region edges; default: localize.segment_max_side, null = full resolution)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: OMP_NUM_THREADS, else the cores less one, which the "
                        "segmenter thread uses)")
    add_config_options(p)
    p.set_defaults(func=run_localize)
