"""weakloc sub-commands: localization (METHOD.md steps 3, 4 and 6, and ``localize`` end to end).

- ``weakloc cams --manifest M --split test --checkpoint CKPT --out DIR``: ``DIR/block{b}/{id}.png``
  for b = 1..B and ``DIR/blocks.csv`` (``id,label,score,w1..wB``).
- ``weakloc fuse --cams DIR --method NAME --out DIR2``: ``DIR2/{id}.png``.
- ``weakloc refine --fused DIR --segments DIR [DIR ...] --cams DIR --out DIR3``: ``DIR3/{id}.png``.
- ``weakloc localize INPUT... --checkpoint CKPT --out DIR [--segmenter NAME ...] [--fusion NAME]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from weakloc.commands import add_config_options, add_manifest_options, config_from_args
from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, read_prob, read_rgb, write_prob

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
    import torch

    from weakloc.cams import block_maps
    from weakloc.manifest import read_manifest
    from weakloc.wcbnet import load_checkpoint

    config = config_from_args(args)
    df = read_manifest(args.manifest, split=args.split)
    if df.empty:
        raise WeaklocError(f"{args.manifest}: no images in split {args.split!r}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta = load_checkpoint(args.checkpoint, map_location=device)
    out = Path(args.out)
    B = model.n_blocks
    rows = []
    for row in tqdm(df.itertuples(index=False), total=len(df), desc="cams", unit="img", file=sys.stderr):
        rgb = read_rgb(row.image)
        bm = block_maps(model, meta, rgb, config["cams"]["method"], config["cams"]["max_side"])
        for b in range(B):
            write_prob(bm.maps[b], out / f"block{b + 1}" / f"{row.id}.png")
        rows.append({"id": row.id, "label": int(row.label), "score": round(bm.prob, 6),
                     **{f"w{b + 1}": round(float(bm.weights[b]), 6) for b in range(B)}})
    with atomic_path(out / BLOCKS_CSV) as tmp:
        pd.DataFrame(rows, columns=["id", "label", "score"] + [f"w{b + 1}" for b in range(B)]).to_csv(tmp, index=False)
    return 0


def run_fuse(args: argparse.Namespace) -> int:
    from weakloc.fusion import FUSION_METHODS, fuse_with_config

    config = config_from_args(args)
    if args.method not in FUSION_METHODS:
        raise WeaklocError(f"unknown fusion method {args.method!r} (choose from {', '.join(FUSION_METHODS)})")
    cams_dir, out = Path(args.cams), Path(args.out)
    df = _read_blocks_csv(cams_dir)
    wcols = _weight_columns(df)
    out.mkdir(parents=True, exist_ok=True)
    for row in tqdm(df.to_dict("records"), desc=f"fuse {args.method}", unit="img", file=sys.stderr):
        maps = _read_block_maps(cams_dir, row["id"], len(wcols))
        weights = np.array([row[c] for c in wcols], dtype=np.float64)
        write_prob(fuse_with_config(maps, args.method, weights, config), out / f"{row['id']}.png")
    return 0


def run_refine(args: argparse.Namespace) -> int:
    from weakloc.refinement import refine_with_config
    from weakloc.segmenters import load_partition

    config = config_from_args(args)
    fused_dir, cams_dir, out = Path(args.fused), Path(args.cams), Path(args.out)
    seg_dirs = [Path(d) for d in args.segments]
    df = _read_blocks_csv(cams_dir)
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
        write_prob(refined, out / f"{image_id}.png")
    return 0


def run_localize(args: argparse.Namespace) -> int:
    from weakloc.localize import localize_images

    config = config_from_args(args)
    segmenters = [] if args.no_refine else (args.segmenter or None)
    result = localize_images(args.inputs, args.checkpoint, args.out, config, segmenters=segmenters,
                             fusion=args.fusion)
    n_ok, n_bad = len(result.rows), len(result.failures)
    print(f"weakloc localize: {n_ok} image(s) written to {args.out}"
          + (f", {n_bad} failed" if n_bad else ""), file=sys.stderr)
    return 1 if n_bad else 0


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
    p = subparsers.add_parser("cams", help="per-block activation maps of a manifest split (step 3)")
    add_manifest_options(p, "run")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="WCBnet checkpoint")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: block{b}/{id}.png and blocks.csv")
    add_config_options(p)
    p.set_defaults(func=run_cams)

    p = subparsers.add_parser("fuse", help="fuse the per-block maps into coarse maps (step 4)")
    p.add_argument("--cams", required=True, metavar="DIR", help="output folder of `weakloc cams`")
    p.add_argument("--method", required=True, metavar="NAME", help="attention, mean, max or wavelet")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: {id}.png")
    add_config_options(p)
    p.set_defaults(func=run_fuse)

    p = subparsers.add_parser("refine", help="Bayesian refinement of fused maps with segment regions (step 6)")
    p.add_argument("--fused", required=True, metavar="DIR", help="output folder of `weakloc fuse`")
    p.add_argument("--segments", required=True, nargs="+", metavar="DIR",
                   help="one or more `weakloc segment` folders ({id}.npz); several combine as independent evidence")
    p.add_argument("--cams", required=True, metavar="DIR",
                   help="output folder of `weakloc cams` (image ids, image probabilities, block maps)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: {id}.png")
    add_config_options(p)
    p.set_defaults(func=run_refine)

    p = subparsers.add_parser("localize", help="localize manipulated regions in image files or folders, end to end")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (not recursive)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="WCBnet checkpoint")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--segmenter", action="extend", nargs="+", metavar="NAME",
                   help="segmenter(s) for the refinement, e.g. --segmenter slic sam (default slic)")
    p.add_argument("--no-refine", action="store_true", help="write the fused map without refinement")
    p.add_argument("--fusion", metavar="NAME", help="fusion method (default: the first of fusion.methods)")
    add_config_options(p)
    p.set_defaults(func=run_localize)
