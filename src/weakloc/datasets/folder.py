"""A user's own images as a dataset (``dataset.name: folder``).

Layout of ``dataset.folder.path`` (or ``--raw DIR``)::

    <path>/authentic/<name>.<ext>      label 0 (an all-zero mask is written)
    <path>/manipulated/<name>.<ext>    label 1
    <path>/masks/<name>.png            optional ground truth of manipulated/<name>.<ext>
                                       (white = manipulated; any 8-bit or 1-bit PNG)

The id of a sample is its file name without the suffix (made filename-safe). Every
non-hidden file in ``authentic/`` and ``manipulated/`` is a sample, so a stray file is
reported as a bad file rather than silently skipped; a manipulated image without a mask is
kept for detection only (empty ``mask`` field in the manifest).
"""

from __future__ import annotations

from pathlib import Path

from weakloc.errors import WeaklocError

from .spec import RawSample, safe_id


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def collect_folder(root: Path, config: dict) -> list[RawSample]:
    """Samples of a user folder laid out as described in this module's docstring."""
    root = Path(root)
    if not root.is_dir():
        raise WeaklocError(f"{root}: folder dataset not found (key dataset.folder.path)")
    auth, manip, masks = root / "authentic", root / "manipulated", root / "masks"
    if not auth.is_dir() and not manip.is_dir():
        raise WeaklocError(f"{root}: a folder dataset needs authentic/ and/or manipulated/ subfolders "
                           f"(see docs/datasets.md)")
    samples: list[RawSample] = []
    for label, folder in ((0, auth), (1, manip)):
        if not folder.is_dir():
            continue
        for path in _visible_files(folder):
            mask = None
            if label == 1:
                candidate = masks / f"{path.stem}.png"
                mask = candidate if candidate.exists() else None
            samples.append(RawSample(id=safe_id(path.stem), label=label, image=path, mask=mask,
                                     source=f"folder: {folder.name}/{path.name}"))
    return samples
