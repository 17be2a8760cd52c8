"""``weakloc localize``: the method on a user's images and folders, written to an output folder.

The method itself is :class:`weakloc.pipeline.Localizer` (one object: model, fusion, segmenters,
refinement and decision); this module writes what it returns, per image with id ``<stem>``:

- ``<stem>_prob.png``: the refined map, 8-bit gray at the input's exact size (value/255 is
  the probability; :func:`weakloc.io.write_prob`);
- ``<stem>_mask.png``: 0/255, ``prob > 0.5`` of that written map;
- ``<stem>_overlay.jpg``: the image with the map as a red tint (opacity 0.6 x prob);
- ``<stem>_photo.jpg``: the image as it was read (EXIF orientation applied, 8-bit RGB), so
  the gallery can show any input format;

and ``scores.csv`` (:data:`SCORE_COLUMNS`), ``run.json`` (settings, checkpoint, operating
point, failures, seconds per image by stage) and ``index.html`` (the gallery,
:mod:`weakloc.gallery`). Two inputs with the same stem get ids ``<stem>``, ``<stem>_<ext>``,
then ``<stem>_<ext>_<n>``.

**Resume.** After an image's four files are written, a record ``.weakloc/<id>.json`` is
written (atomically, last) with the image's key (the sha256 of the image's bytes, of the
checkpoint's bytes, of the settings and of the weakloc version) and its files' sha256. A
rerun of the same command skips every image whose record has its current key and whose files
are intact; a changed image, checkpoint or setting recomputes that image, and ``force=True``
(``--force``) recomputes them all. A run killed at any moment (SIGKILL included) loses at
most the images in flight (the rerun first deletes the temporary files a killed write left):
the rerun's per-image files and ``scores.csv`` are the bytes an uninterrupted run writes.
``run.json`` and the gallery also say how this run spent its time, which no two runs share.

Any readable format (JPEG, PNG, TIFF, WebP, BMP; grayscale, palette, RGBA, CMYK, 16-bit) is
converted to 8-bit RGB (:func:`weakloc.io.read_rgb_stored`). A file that cannot be read is
named on stderr with the reason and skipped; the caller gets the list of failures.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from weakloc.errors import WeaklocError
from weakloc.io import (
    atomic_path,
    file_sha256,
    inside,
    list_images,
    row_chunks,
    write_mask,
    write_prob,
    write_text_atomic,
)
from weakloc.pipeline import SETTINGS_SOURCES, STAGES, Localization, Localizer, default_threads

OVERLAY_OPACITY = 0.6
OVERLAY_QUALITY = 90
SCORE_COLUMNS = ["id", "score", "verdict", "threshold", "threshold_source", "prob", "mask", "overlay", "photo",
                 "input"]
#: The output folder's resume records, one ``<id>.json`` per image written.
RECORDS = ".weakloc"


@dataclass
class LocalizeResult:
    """What :func:`localize_images` did: one row per image in the folder (computed or resumed),
    one message per failure, and how many images were resumed."""

    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    resumed: int = 0


def overlay(rgb: np.ndarray, prob: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """Tint ``rgb`` ``(H, W, 3) uint8`` red where ``prob`` ``(H, W) in [0, 1]`` is high; returns uint8.

    Elementwise, a band of rows at a time (:func:`weakloc.io.row_chunks`), so a very large image
    makes no full-size float copies."""
    red = np.array([255.0, 0.0, 0.0], dtype=np.float32)
    out = np.empty(rgb.shape, dtype=np.uint8)
    for r0, r1 in row_chunks(*rgb.shape[:2]):
        a = (np.clip(prob[r0:r1], 0.0, 1.0) * opacity)[..., None]
        out[r0:r1] = np.clip(rgb[r0:r1].astype(np.float32) * (1.0 - a) + red * a + 0.5, 0, 255)
    return out


def _write_jpeg(rgb: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="JPEG", quality=OVERLAY_QUALITY)


def _unique_ids(paths: Sequence[Path]) -> list[str]:
    seen: set[str] = set()
    ids = []
    for p in paths:
        cand = p.stem
        if cand in seen:
            cand = f"{p.stem}_{p.suffix.lstrip('.').lower() or 'file'}"
        base, n = cand, 2
        while cand in seen:
            cand = f"{base}_{n}"
            n += 1
        seen.add(cand)
        ids.append(cand)
    return ids


def write_image_outputs(out: Path, image_id: str, loc: Localization, rgb: np.ndarray, source: str | Path) -> dict:
    """Write one image's four files into ``out``; returns its ``scores.csv`` row (plus width, height)."""
    names = {"prob": f"{image_id}_prob.png", "mask": f"{image_id}_mask.png",
             "overlay": f"{image_id}_overlay.jpg", "photo": f"{image_id}_photo.jpg"}
    write_prob(loc.prob, inside(out, names["prob"]))
    write_mask(loc.mask, inside(out, names["mask"]))
    _write_jpeg(overlay(rgb, loc.prob), inside(out, names["overlay"]))
    _write_jpeg(rgb, inside(out, names["photo"]))
    return {"id": image_id, "score": f"{loc.score:.6f}", "verdict": loc.verdict,
            "threshold": f"{loc.threshold:.6f}", "threshold_source": loc.threshold_source,
            **names, "input": str(source), "width": rgb.shape[1], "height": rgb.shape[0]}


# ---------------------------------------------------------------------------- resume records

def run_fingerprint(localizer: Localizer) -> str:
    """The sha256 of everything besides the image that an image's files depend on: the
    checkpoint's bytes, the settings (:meth:`Localizer.settings`) and the weakloc version."""
    from weakloc.version import __version__

    ckpt = file_sha256(localizer.checkpoint) if localizer.checkpoint else "in-memory model"
    text = json.dumps({"checkpoint": ckpt, "settings": localizer.settings(), "weakloc": __version__},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def image_key(fingerprint: str, path: Path, image_id: str) -> str:
    """An image's resume key: the run's fingerprint, the image's bytes and its id (its file names)."""
    return hashlib.sha256(f"{fingerprint}\n{file_sha256(path)}\n{image_id}".encode()).hexdigest()


def _record_path(out: Path, image_id: str) -> Path:
    return inside(out / RECORDS, f"{image_id}.json")


def resumed_row(out: Path, image_id: str, key: str, source: Path) -> dict | None:
    """The image's ``scores.csv`` row from its record when the record has ``key`` and every file
    it lists is intact (same sha256); else None (the image is computed again)."""
    try:
        record = json.loads(_record_path(out, image_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    for name, digest in record.get("files", {}).items():
        target = inside(out, name)
        if not target.is_file() or file_sha256(target) != digest:
            return None
    return {**record["row"], "input": str(source)}


def _write_record(out: Path, key: str, row: dict, seconds: dict, segmented: bool) -> None:
    files = {row[k]: file_sha256(inside(out, row[k])) for k in ("prob", "mask", "overlay", "photo")}
    record = {"key": key, "row": row, "files": files, "seconds": seconds, "segmented": segmented}
    write_text_atomic(_record_path(out, row["id"]), json.dumps(record, indent=1, sort_keys=True) + "\n")


def _write_scores(out: Path, rows: list[dict]) -> None:
    """``out/scores.csv`` (:data:`SCORE_COLUMNS`) of the images done so far, atomically."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SCORE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "scores.csv", buf.getvalue())


def _checkpoint_info(localizer: Localizer) -> dict:
    from weakloc.release import released_info

    meta = {k: v for k, v in localizer.meta.items() if k != "config"}
    info = {"path": str(localizer.checkpoint), "meta": meta, "model": localizer.meta["config"]}
    if localizer.released:
        info["release"] = released_info()
    return info


class _Timing:
    """Seconds per image by stage over the images this run computed."""

    def __init__(self) -> None:
        self.total = dict.fromkeys((*STAGES, "write"), 0.0)
        self.images = self.segmented = 0

    def add(self, seconds: dict, segmented: bool) -> None:
        for k, v in seconds.items():
            self.total[k] += v
        self.images += 1
        self.segmented += int(segmented)

    def summary(self, wall: float, resumed: int) -> dict:
        n = max(self.images, 1)
        return {"images_computed": self.images, "images_resumed": resumed, "images_segmented": self.segmented,
                "seconds_per_image": {k: round(v / n, 4) for k, v in self.total.items()},
                "wall_seconds": round(wall, 2),
                "wall_seconds_per_image": round(wall / n, 4) if self.images else None}


def _write_one(out: Path, image_id: str, key: str, loc: Localization, rgb: np.ndarray, source: Path) -> dict:
    t = time.perf_counter()
    row = write_image_outputs(out, image_id, loc, rgb, source)
    seconds = {**loc.seconds, "write": time.perf_counter() - t}
    _write_record(out, key, row, seconds, loc.segmented)  # last: the image counts as done only now
    return {"row": row, "seconds": seconds, "segmented": loc.segmented}


def localize_images(inputs: Sequence[str | Path], checkpoint: str | Path | None, out_dir: str | Path,
                    config: dict | None = None, segmenters: Sequence[str] | None = None, fusion: str | None = None,
                    progress: bool = True, threads: int | None = None, overrides: dict | None = None,
                    force: bool = False) -> LocalizeResult:
    """Localize manipulated regions in image files and folders (not recursive).

    Args:
        inputs: files and/or folders (folders contribute their image files).
        checkpoint: a WCBnet checkpoint (``weakloc train``); None: the released model (:mod:`weakloc.release`).
        out_dir: output folder (created).
        config: a configuration (``cams``, ``fusion``, ``segmenters``, ``refine``, ``localize``); None:
            the checkpoint's study settings (:func:`weakloc.pipeline.resolve_settings`).
        overrides: settings set after that (:class:`Localizer`).
        segmenters: segmenter names (default: the config's ``segmenters.use``; ``[]`` = no refinement).
        fusion: fusion method (default: the first of ``fusion.methods``).
        threads: torch CPU threads (default :func:`default_threads`: the segmenters run in a
            worker thread beside the detector, so one core is left to them).
        force: recompute every image, even those a previous run finished (see the module's "Resume").

    Returns:
        :class:`LocalizeResult`; every failure is also printed to stderr as one line.
    """
    from tqdm import tqdm

    from weakloc.gallery import write_gallery
    from weakloc.runtime import set_threads
    from weakloc.version import __version__

    t0 = time.perf_counter()
    paths = list_images(list(inputs))
    if not paths:
        raise WeaklocError(f"no images found in {', '.join(str(i) for i in inputs)}")
    localizer = Localizer(checkpoint, config, segmenters=segmenters, fusion=fusion, threads=threads,
                          overrides=overrides)
    model = "the released model (docs/model-card.md)" if localizer.released else str(localizer.checkpoint)
    print(f"weakloc localize: {model}, settings of {SETTINGS_SOURCES[localizer.settings_source]}", file=sys.stderr)
    if not threads:  # the default depends on the segmenters the Localizer resolved (no compute ran yet)
        set_threads(default_threads(bool(localizer.segmenter_names)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stray in [*out.glob(".*.tmp*"), *(out / RECORDS).glob(".*.tmp*")]:  # a killed run's half-written files
        stray.unlink()
    ids = _unique_ids(paths)
    fingerprint = run_fingerprint(localizer)
    rows: dict[str, dict] = {}
    todo: list[tuple[Path, str, str]] = []
    result = LocalizeResult()
    for path, image_id in zip(paths, ids, strict=True):
        try:
            key = image_key(fingerprint, path, image_id)
        except WeaklocError as exc:
            result.failures.append(str(exc))
            print(f"weakloc localize: skipped {exc}", file=sys.stderr)
            continue
        row = None if force else resumed_row(out, image_id, key, path)
        if row is None:
            todo.append((path, image_id, key))
        else:
            rows[image_id] = row
    result.resumed = len(rows)
    if rows:
        print(f"weakloc localize: {len(rows)} of {len(paths)} images already done in {out} "
              "(same image, checkpoint and settings); --force recomputes them", file=sys.stderr)

    def in_order() -> list[dict]:
        return [rows[i] for i in ids if i in rows]

    timing = _Timing()
    pending: list = []  # the files are encoded in a writer thread (at most four images queued)
    written = len(rows)

    def collect(future) -> None:
        done = future.result()
        rows[done["row"]["id"]] = done["row"]
        timing.add(done["seconds"], done["segmented"])

    try:
        results = zip(localizer.localize_many(p for p, _, _ in todo), todo, strict=True)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="weakloc-write") as writer_pool:
            for (_, loc, rgb), (path, image_id, key) in tqdm(results, total=len(todo), desc="localize",
                                                              unit="img", file=sys.stderr, disable=not progress):
                if isinstance(loc, WeaklocError):
                    result.failures.append(str(loc))
                    tqdm.write(f"weakloc localize: skipped {loc}", file=sys.stderr)
                    continue
                pending.append(writer_pool.submit(_write_one, out, image_id, key, loc, rgb, path))
                while len(pending) > 2 and pending[0].done() or len(pending) > 4:
                    collect(pending.pop(0))
                if len(rows) >= written + max(1, written // 50):  # scores as it goes (<= 2 % behind)
                    _write_scores(out, in_order())
                    written = len(rows)
            while pending:
                collect(pending.pop(0))
    finally:
        # whatever ends the run (an error, Ctrl-C), the images already written keep their rows
        for f in pending:
            if f.done() and f.exception() is None:
                collect(f)
        _write_scores(out, in_order())
    result.rows = in_order()
    run = {"weakloc": __version__, "checkpoint": _checkpoint_info(localizer),
           "operating_point": {"threshold": localizer.threshold, "source": localizer.threshold_source,
                               **({"chosen": localizer.meta["image_threshold"]}
                                  if localizer.threshold_source == "validation" else {})},
           "settings": localizer.settings(), "settings_from": SETTINGS_SOURCES[localizer.settings_source],
           "inputs": [str(i) for i in inputs],
           "images": len(result.rows), "failures": result.failures,
           "timing": timing.summary(time.perf_counter() - t0, result.resumed)}
    write_text_atomic(out / "run.json", json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    write_gallery(out, result.rows, run)
    return result
