"""Datasets: the registry, the embedded synthetic set, public sets, user folders, preparation.

``DATASETS`` (:mod:`weakloc.datasets.registry`) maps each ``dataset.name`` of the config to its
:class:`DatasetSpec` (:mod:`weakloc.datasets.spec`); :func:`prepare_dataset` turns any of them
into ``manifest.csv`` + ``images/`` + ``masks/`` (docs/architecture.md, "Data");
:func:`download_dataset` fetches and extracts raw files.
"""

from __future__ import annotations

from .download import download_dataset, extract_archive, fetch
from .prepare import assign_splits, prepare_dataset
from .registry import DATASETS, get_dataset
from .spec import DatasetSpec, Download, RawSample

__all__ = ["DATASETS", "DatasetSpec", "Download", "RawSample", "get_dataset", "prepare_dataset",
           "assign_splits", "download_dataset", "extract_archive", "fetch"]
