"""The segmentation cache: one partition file per image and segmenter setting.

Layout of a cache folder (``results/{d}/segments/{name}/{key}/`` in the workflow):

- ``{id}.npz``: ``np.savez_compressed(labels=(H, W) int32)``, ids ``0..R-1``
  (read with :func:`weakloc.segmenters.partition.load_partition`);
- ``settings.json``: the segmenter's name, its full settings and their key; written last,
  so its presence means every image of the run is done.

The partitions are first written to the folder's work folder
(:func:`weakloc.io.resumable_dir`, keyed by the segmenter, its settings, its weights and the
images' bytes), each ``.npz`` atomically, and the finished set replaces ``out_dir`` at the
end: a killed run (even one whose output folder Snakemake deleted) resumes where it stopped
and computes only the missing images. A finished folder whose ``settings.json`` records
other settings is refused rather than mixed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from weakloc.errors import WeaklocError
from weakloc.io import file_sha256, inside, read_rgb, resumable_dir, write_text_atomic
from weakloc.manifest import content_hash, read_manifest
from weakloc.segmenters import build_segmenter, complete_settings, settings_key
from weakloc.segmenters.partition import check_partition, save_partition
from weakloc.shards import shard_items


def segment_manifest(manifest: str | Path, split: str | None, name: str, settings: dict | None,
                     out_dir: str | Path, shard=None) -> int:
    """Partition every image of ``manifest`` (``split`` only, or all when None) into ``out_dir``.

    Returns how many partitions were computed in this call (images a killed earlier run had
    finished are kept; the segmenter, and its weights, load only when some image needs it).
    """
    from weakloc.segmenters import MAP_PROMPTED

    if name in MAP_PROMPTED:
        raise WeaklocError(f"segmenter {name} is prompted by the coarse map, which does not exist before "
                           f"segmentation: use it with `weakloc localize --segmenter {name}`")
    out_dir = Path(out_dir)
    full = complete_settings(name, settings)
    key = settings_key(name, full)
    record = {"segmenter": name, "key": key, "settings": full}
    settings_path = out_dir / "settings.json"
    if settings_path.is_file():
        try:
            old = json.loads(settings_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WeaklocError(f"{settings_path}: unreadable ({exc}); delete it to rebuild the cache") from None
        if old.get("segmenter") != name or old.get("key") != key:
            raise WeaklocError(f"{settings_path}: this folder holds {old.get('segmenter')} partitions with key "
                               f"{old.get('key')}, not {name} with key {key}; use another --out or delete the folder")
    rows = shard_items(read_manifest(manifest, split), shard)  # shard: weakloc.shards.Shard or None (all)
    weights = full.get("checkpoint")
    if name == "sam" and weights is None and full.get("model_type") == "vit_t":
        from weakloc.segmenters.sam import DEFAULT_MOBILE_SAM
        weights = DEFAULT_MOBILE_SAM
    fingerprint = {"step": "segment", "segmenter": name, "key": key, "split": split,
                   "data": content_hash(rows),
                   "weights": file_sha256(weights) if weights and Path(weights).is_file() else None}
    written = 0
    with resumable_dir(out_dir, fingerprint) as work:
        todo = [(r.id, r.image) for r in rows.itertuples() if not inside(work, f"{r.id}.npz").is_file()]
        if len(todo) < len(rows):
            print(f"segment {name}: resuming, {len(rows) - len(todo)} of {len(rows)} partitions already done",
                  file=sys.stderr)
        if todo:
            segmenter = build_segmenter(name, full)
            for image_id, image_path in tqdm(todo, desc=f"segment {name}", unit="img", dynamic_ncols=True):
                rgb = read_rgb(image_path)
                labels = check_partition(segmenter(rgb), rgb.shape[:2], source=f"{name} on {image_path}")
                save_partition(labels, work / f"{image_id}.npz")
                written += 1
        write_text_atomic(work / "settings.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return written
