"""Shards: one per-image step split into N jobs that a cluster runs side by side.

A shard ``I/N`` (1-based) of a step is the images at positions ``I-1, I-1+N, I-1+2N, ...``
of the list the step would process unsharded (the manifest split in file order for
``segment``, ``cams`` and ``baseline``; the rows of ``blocks.csv`` for ``fuse`` and
``refine``, which are in that same order). Round robin rather than contiguous blocks, so a
list sorted by source or size still gives shards of similar cost.

Every per-image output depends on its own image only, so the shards' files are exactly the
files of the unsharded run; :func:`merge_shards` puts them back together deterministically:

- a file present in one shard is taken as it is;
- a file present in several shards (``settings.json`` of a segmentation cache) must be
  byte-identical in all of them;
- a per-row table present in every shard (``blocks.csv`` of ``weakloc cams``) is
  re-interleaved in round-robin order, which restores the unsharded row order byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from weakloc.errors import WeaklocError
from weakloc.io import staged_dir

T = TypeVar("T")

# Tables with one row per image that shards write for their own images only.
ROW_TABLES = ("blocks.csv",)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1 <= index <= count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard | None:
    """``"2/4"`` -> ``Shard(2, 4)``; None stays None (the whole list)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise WeaklocError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return Shard(int(m[1]), int(m[2]))


def shard_items(items: Sequence[T], shard: Shard | None) -> Sequence[T]:
    """The items of ``shard`` (all of them when ``shard`` is None), in their original order.

    Works on lists and on pandas DataFrames (by position).
    """
    if shard is None:
        return items
    if hasattr(items, "iloc"):
        return items.iloc[shard.index - 1::shard.count]
    return items[shard.index - 1::shard.count]


def _files(folder: Path) -> list[str]:
    """Relative paths of every file under ``folder`` (hidden temporary files skipped), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                out.append(os.path.relpath(os.path.join(dirpath, name), folder))
    return sorted(out)


def _place(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _interleave(tables: list[Path]) -> str:
    """Round-robin merge of per-shard CSV tables (same header): the unsharded row order."""
    header = None
    bodies = []
    for path in tables:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        if not lines:
            raise WeaklocError(f"{path}: empty table (no header)")
        if header is None:
            header = lines[0]
        elif lines[0] != header:
            raise WeaklocError(f"{path}: header {lines[0].strip()!r} differs from {tables[0]}'s {header.strip()!r}")
        bodies.append(lines[1:])
    n = sum(len(b) for b in bodies)
    count = len(tables)
    for i, (path, body) in enumerate(zip(tables, bodies, strict=True)):
        expected = len(range(i, n, count))
        if len(body) != expected:
            raise WeaklocError(f"{path}: {len(body)} rows, but shard {i + 1}/{count} of {n} rows has {expected} "
                               "(the shards come from different runs or are incomplete)")
    rows = [bodies[k % count][k // count] for k in range(n)]
    return header + "".join(rows)


def merge_shards(shard_dirs: Sequence[str | Path], out_dir: str | Path) -> int:
    """Merge the folders of shards ``1/N .. N/N`` (in that order) into ``out_dir``.

    ``out_dir`` appears complete or not at all (built beside it, then renamed). Returns the
    number of files written. Raises :class:`WeaklocError` naming the folder or file when a
    shard is missing, two shards disagree on a shared file, or a row table does not fit.
    """
    dirs = [Path(d) for d in shard_dirs]
    if not dirs:
        raise WeaklocError("no shard folders given")
    for d in dirs:
        if not d.is_dir():
            raise WeaklocError(f"{d}: shard folder not found")
    out_dir = Path(out_dir)
    owners: dict[str, list[Path]] = {}
    for d in dirs:
        for rel in _files(d):
            owners.setdefault(rel, []).append(d)
    with staged_dir(out_dir, "merge") as tmp:
        for rel, where in owners.items():
            if Path(rel).name in ROW_TABLES:
                if len(where) != len(dirs):
                    missing = next(d for d in dirs if d not in where)
                    raise WeaklocError(f"{missing / rel}: missing (every shard writes its rows of {rel})")
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_text(_interleave([d / rel for d in where]), encoding="utf-8")
                continue
            first = where[0] / rel
            first_bytes = first.read_bytes() if len(where) > 1 else b""
            for other in where[1:]:
                if (other / rel).read_bytes() != first_bytes:
                    raise WeaklocError(f"{other / rel}: differs from {first} (shards of different settings?)")
            _place(first, tmp / rel)
    return len(owners)
