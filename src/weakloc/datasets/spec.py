"""What a dataset is, as the registry records it: :class:`DatasetSpec`, :class:`Download`, :class:`RawSample`.

Each :class:`DatasetSpec` names a dataset's source (URL and sha256 where a stable download
exists, otherwise manual-download instructions), licence and citation, and a ``collect``
function that turns its extracted files into :class:`RawSample` records (image, mask rule,
label). :func:`weakloc.datasets.prepare.prepare_dataset` does the rest the same way for all.
The entries themselves are in :mod:`weakloc.datasets.registry`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RawSample:
    """One sample as found in a raw dataset tree.

    ``mask``: the ground-truth file, or None (authentic: an all-zero mask is written;
    manipulated: the ground truth is unknown and the manifest's ``mask`` stays empty).
    ``mask_rule``: how the mask file becomes ``(H, W) bool`` (a key of
    :data:`weakloc.datasets.prepare.MASK_RULES`: ``binary`` = value > 127, ``nonzero``,
    ``columbia`` = the Columbia edge-mask colours).
    """

    id: str
    label: int
    image: Path
    mask: Path | None
    source: str
    mask_rule: str = "binary"


@dataclass(frozen=True)
class Download:
    """One downloadable file: URL, sha256 (None = not pinned), the name to save it under."""

    url: str
    sha256: str | None
    filename: str


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry.

    ``downloads``: files fetched by ``weakloc data download`` (empty = no stable URL; the
    user supplies ``dataset.archive`` and, for CASIA 2.0, ``dataset.masks_archive``).
    ``collect(raw_dir, config) -> list[RawSample]`` maps the extracted tree to samples.
    """

    name: str
    title: str
    licence: str
    citation: str
    homepage: str
    collect: Callable[[Path, dict], list[RawSample]] | None = None
    downloads: tuple[Download, ...] = ()
    masks_download: Download | None = None
    manual: str = ""
    needs_masks_archive: bool = False
    notes: str = ""


def safe_id(text: str) -> str:
    """A filename-safe id: characters other than letters, digits, ``-``, ``_``, ``.`` become ``_``."""
    out = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".")
    return out or "_"
