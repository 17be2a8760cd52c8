"""weakloc sub-commands: data (``weakloc data download``, ``weakloc data photos`` and ``weakloc data prepare``)."""

from __future__ import annotations

import argparse
import sys

from weakloc.commands import add_command, add_config_options, add_group, add_out, config_from_args


def _download(args: argparse.Namespace) -> int:
    from weakloc.datasets import download_dataset

    config = config_from_args(args)
    archive = args.archive or config["dataset"]["archive"]
    masks = args.masks_archive or config["dataset"]["masks_archive"]
    out = download_dataset(args.name, args.out, archive=archive, masks_archive=masks)
    if out is not None:
        print(f"{args.name}: raw files in {out}", file=sys.stderr)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from weakloc.datasets import prepare_dataset
    from weakloc.manifest import SPLITS, read_manifest

    config = config_from_args(args)
    manifest = prepare_dataset(config, args.out, raw_dir=args.raw, photo_pool=args.photo_pool)
    df = read_manifest(manifest)
    counts = df.groupby(["split", "label"]).size().to_dict()
    summary = ", ".join(f"{s}: {counts.get((s, 0), 0)} authentic + {counts.get((s, 1), 0)} manipulated"
                        for s in SPLITS if counts.get((s, 0)) or counts.get((s, 1)))
    print(f"{config['dataset']['name']}: {len(df)} images -> {manifest} ({summary})", file=sys.stderr)
    return 0


def _photos(args: argparse.Namespace) -> int:
    from weakloc.datasets.photo_pool import build_pool, default_cache_dir, pool_rows

    cache = args.cache or default_cache_dir()
    out = build_pool(args.out, cache_dir=cache, deb_dir=args.deb_dir)
    print(f"photo pool: {len(pool_rows())} photos and attribution.csv in {out} (cache: {cache})", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``data download``, ``data prepare`` and ``data photos`` to ``subparsers``."""
    from weakloc.datasets import DATASETS

    sub = add_group(subparsers, "data", "download and prepare datasets",
                    "Download raw datasets and prepare them into manifest + images + masks.",
                    dest="data_command", metavar="ACTION")

    p = add_command(sub, "download", _download, "fetch/extract a dataset's raw files into data/raw/NAME",
                    "Fetch (pooch, checksummed where pinned) and safely extract a dataset's raw "
                    "files. For synthetic and folder there is nothing to download: a message, exit 0.")
    p.add_argument("name", metavar="NAME", choices=sorted(DATASETS), help=f"one of: {', '.join(sorted(DATASETS))}")
    add_out(p, "DIR", "raw folder to fill (data/raw/NAME)")
    p.add_argument("--archive", metavar="PATH", help="archive downloaded by hand (overrides dataset.archive)")
    p.add_argument("--masks-archive", metavar="PATH", help="ground-truth archive (overrides dataset.masks_archive)")
    add_config_options(p, sections=('dataset',))

    p = add_command(sub, "prepare", _prepare, "build manifest.csv, images/ and masks/ for the configured dataset",
                    "Prepare dataset.name from the config into DIR (manifest.csv, images/, masks/).")
    add_out(p, "DIR", "output folder (data/prepared/NAME)")
    p.add_argument("--raw", metavar="DIR", help="raw folder (default data/raw/NAME; for folder: dataset.folder.path)")
    p.add_argument("--photo-pool", metavar="DIR",
                   help="the photo pool built by `weakloc data photos` (dataset.synthetic.photos: debian)")
    add_config_options(p, sections=('dataset',))

    p = add_command(sub, "photos", _photos, "build the photo pool from the pinned Debian packages",
                    "Fetch the pinned Debian packages that hold the pool's photographs (apt-get download, or "
                    "the .deb files of --deb-dir), check each package and photo by sha256, and write the "
                    "photos and attribution.csv into DIR (docs/datasets.md, 'Photo pool').")
    add_out(p, "DIR", "output folder (data/photos/debian)")
    p.add_argument("--deb-dir", metavar="DIR", help="folder of .deb files to use instead of apt-get "
                                                    "(the workflow passes dataset.synthetic.deb_dir)")
    p.add_argument("--cache", metavar="DIR", help="where fetched packages and photos are kept "
                                                  "(default $WEAKLOC_CACHE or ~/.cache/weakloc)")
