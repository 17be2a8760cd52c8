"""The segmentation cache: one partition file per image and segmenter setting.

Layout of a cache folder (``results/{d}/segments/{name}/{key}/`` in the workflow):

- ``{id}.npz``: ``np.savez_compressed(labels=(H, W) int32)``, ids ``0..R-1``
  (read with :func:`weakloc.segmenters.partition.load_partition`);
- ``settings.json``: the segmenter's name, its full settings and their key; written last,
  so its presence means every image of the run is done.

Each ``.npz`` is written atomically and existing ones are skipped, so an interrupted run
resumes where it stopped. A folder whose ``settings.json`` records other settings is
refused rather than mixed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from weakloc.errors import WeaklocError
from weakloc.io import read_rgb, write_text_atomic
from weakloc.manifest import read_manifest
from weakloc.segmenters import build_segmenter, complete_settings, settings_key
from weakloc.segmenters.partition import check_partition, save_partition


def segment_manifest(manifest: str | Path, split: str | None, name: str, settings: dict | None,
                     out_dir: str | Path) -> int:
    """Partition every image of ``manifest`` (``split`` only, or all when None) into ``out_dir``.

    Returns how many partitions were written (images whose ``.npz`` existed are skipped;
    the segmenter, and its weights, load only when some image needs it).
    """
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
    rows = read_manifest(manifest, split)
    todo = [(r.id, r.image) for r in rows.itertuples() if not (out_dir / f"{r.id}.npz").is_file()]
    written = 0
    if todo:
        segmenter = build_segmenter(name, full)
        for image_id, image_path in tqdm(todo, desc=f"segment {name}", unit="img", dynamic_ncols=True):
            rgb = read_rgb(image_path)
            labels = check_partition(segmenter(rgb), rgb.shape[:2], source=f"{name} on {image_path}")
            save_partition(labels, out_dir / f"{image_id}.npz")
            written += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(settings_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return written
