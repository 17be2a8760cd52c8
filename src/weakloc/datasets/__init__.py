"""Datasets: the registry, the embedded synthetic set, public sets, user folders, preparation.

``DATASETS`` maps each ``dataset.name`` of the config to its :class:`DatasetSpec`;
:func:`prepare_dataset` turns any of them into ``manifest.csv`` + ``images/`` + ``masks/``
(docs/architecture.md, "Data"); :func:`download_dataset` fetches and extracts raw files.
"""

from __future__ import annotations

from .folder import collect_folder
from .public import PUBLIC_DATASETS
from .registry import DatasetSpec, Download, RawSample, get_dataset

SYNTHETIC = DatasetSpec(
    name="synthetic",
    title="Synthetic forgeries from photographs shipped in installed packages (embedded default)",
    licence="generated; source photos: public domain / CC0 / CC-BY 2.0 / Middlebury (see docs/datasets.md)",
    citation="this project (weakloc); see docs/datasets.md for the source photographs' credits",
    homepage="docs/datasets.md",
    collect=None,
)

FOLDER = DatasetSpec(
    name="folder",
    title="A user's own images: authentic/, manipulated/, optional masks/",
    licence="the user's",
    citation="",
    homepage="docs/datasets.md",
    collect=collect_folder,
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (SYNTHETIC, *PUBLIC_DATASETS, FOLDER)}

from .prepare import assign_splits, prepare_dataset  # noqa: E402
from .download import download_dataset, extract_archive, fetch  # noqa: E402

__all__ = ["DATASETS", "DatasetSpec", "Download", "RawSample", "get_dataset", "prepare_dataset",
           "assign_splits", "download_dataset", "extract_archive", "fetch"]
