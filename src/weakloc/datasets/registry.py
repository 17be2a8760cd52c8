"""The dataset registry: ``DATASETS`` maps each ``dataset.name`` of the config to its :class:`DatasetSpec`.

The public sets' entries are in :mod:`weakloc.datasets.public`; the two built here need no
download: the embedded synthetic generator (:mod:`weakloc.datasets.synthetic`, which
:func:`weakloc.datasets.prepare.prepare_dataset` runs instead of a ``collect``) and a user's
folder (:mod:`weakloc.datasets.folder`).
"""

from __future__ import annotations

from weakloc.errors import WeaklocError

from .folder import collect_folder
from .public import PUBLIC_DATASETS
from .spec import DatasetSpec

SYNTHETIC = DatasetSpec(
    "synthetic", "Synthetic forgeries from photographs shipped in installed packages (embedded default)",
    licence="generated; source photos: public domain / CC0 / CC-BY 2.0 / Middlebury (see docs/datasets.md)",
    citation="this project (weakloc); see docs/datasets.md for the source photographs' credits",
    homepage="docs/datasets.md")

FOLDER = DatasetSpec("folder", "A user's own images: authentic/, manipulated/, optional masks/", licence="the user's",
                     citation="", homepage="docs/datasets.md", collect=collect_folder)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (SYNTHETIC, *PUBLIC_DATASETS, FOLDER)}


def get_dataset(name: str) -> DatasetSpec:
    """The registry entry ``name``; a :class:`WeaklocError` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise WeaklocError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})") from None
