"""The public forgery datasets: CASIA 2.0 (the paper's), CASIA 1.0, Columbia, COVERAGE.

Each ``collect_*`` function maps an extracted tree (``data/raw/<name>/``, any nesting: the
folders are found by name) to :class:`RawSample` records. File layouts and naming rules were
checked against the datasets' public descriptions (cited per function); the mask
conventions marked [ours] are this project's reading of them, not an official tool.

None of these datasets has a stable, checksummed download of its images: the hosts are
Google Drive / OneDrive folders or a request form. The user downloads the archive by hand
and passes it as ``dataset.archive`` (``weakloc data download NAME --archive PATH``). The
CASIA ground-truth masks live in public GitHub repositories and are fetched by URL; their
sha256 is not pinned (no published checksum was found), so pooch only records it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from weakloc.io import IMAGE_SUFFIXES

from .spec import DatasetSpec, Download, RawSample

_SKIP_DIRS = {"__MACOSX"}


def raw_files(root: Path) -> list[Path]:
    """Every regular, non-hidden file below ``root`` (sorted; macOS resource forks skipped)."""
    out = []
    for p in sorted(Path(root).rglob("*")):
        if not p.is_file() or p.name.startswith(".") or any(part in _SKIP_DIRS for part in p.parts):
            continue
        out.append(p)
    return out


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def ground_truth_masks(files: list[Path]) -> dict[str, Path]:
    """Ground-truth masks by the stem of the image they belong to.

    ``<stem>_gt.png`` anywhere, and ``<stem>.png`` inside a folder whose name contains
    ``groundtruth`` or is ``gt`` (case-insensitive), the layouts of the public CASIA
    ground truths (namtpham/casia1groundtruth, namtpham/casia2groundtruth,
    SunnyHaze/CASIA2.0-Corrected-Groundtruth).
    """
    masks: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() != ".png":
            continue
        if p.stem.endswith("_gt"):
            masks.setdefault(p.stem[: -len("_gt")], p)
        elif any("groundtruth" in part.lower().replace(" ", "") or part.lower() == "gt"
                 for part in p.parent.parts[-2:]):
            masks.setdefault(p.stem, p)
    return masks


# ----------------------------------------------------------------------------- CASIA


def _collect_casia(root: Path, name: str, tampered_prefix: str) -> list[RawSample]:
    """CASIA 1.0 / 2.0: ``Au_*`` authentic, ``<tampered_prefix>*`` tampered, masks by stem.

    Naming (namtpham's READMEs): ``Au_<cat>_<n>.jpg`` authentic;
    ``Tp_D_...`` / ``Tp_S_...`` (2.0) and ``Sp_D_...`` / ``Sp_S_...`` (1.0) tampered, ``D``
    = spliced from a different image, ``S`` = copy-move within the same image.
    """
    files = raw_files(root)
    masks = ground_truth_masks(files)
    mask_paths = set(masks.values())
    samples: list[RawSample] = []
    for p in files:
        if not _is_image(p) or p in mask_paths:
            continue
        if p.name.startswith("Au_"):
            samples.append(RawSample(p.stem, 0, p, None, f"{name}: {_rel(p, root)}"))
        elif p.name.startswith(tampered_prefix):
            kind = "splice" if p.name.startswith(f"{tampered_prefix}D_") else (
                "copymove" if p.name.startswith(f"{tampered_prefix}S_") else "tampered")
            samples.append(RawSample(p.stem, 1, p, masks.get(p.stem), f"{name} ({kind}): {_rel(p, root)}"))
    return samples


def collect_casia2(root: Path, config: dict) -> list[RawSample]:
    """CASIA 2.0: ``Au/Au_*.jpg|bmp|tif`` and ``Tp/Tp_*.jpg|tif`` with ``<stem>_gt.png`` masks."""
    return _collect_casia(root, "casia2", "Tp_")


def collect_casia1(root: Path, config: dict) -> list[RawSample]:
    """CASIA 1.0: ``Au/Au_*.jpg`` and ``Tp/CM|Sp/Sp_*.jpg`` with masks from the ground-truth folders."""
    return _collect_casia(root, "casia1", "Sp_")


# ----------------------------------------------------------------------------- Columbia


def columbia_mask(arr: np.ndarray) -> np.ndarray:
    """Binarise a Columbia edge mask: ``(H, W, 3) uint8`` -> ``(H, W) bool``.

    [ours, following the convention of other open benchmark code] The edge masks
    (``4cam_splc/edgemask/<name>_edgemask.jpg``) paint the region from one camera red and the
    spliced region from the other green, with the boundary between them; they are JPEG
    files, so colours are thresholded rather than compared exactly: spliced = green > 127
    and red <= 127. A grayscale mask is thresholded at 127.
    """
    if arr.ndim == 2:
        return arr > 127
    r, g = arr[..., 0].astype(np.int16), arr[..., 1].astype(np.int16)
    return (g > 127) & (r <= 127)


def collect_columbia(root: Path, config: dict) -> list[RawSample]:
    """Columbia Uncompressed: ``4cam_auth/*.tif|bmp`` authentic, ``4cam_splc/*.tif|bmp`` spliced.

    Masks: ``4cam_splc/edgemask/<stem>_edgemask.jpg`` (any image suffix accepted).
    Layout from https://www.ee.columbia.edu/ln/dvmm/downloads/authsplcuncmp/.
    """
    files = raw_files(root)
    edge = {p.stem[: -len("_edgemask")]: p for p in files if p.stem.endswith("_edgemask") and _is_image(p)}
    samples: list[RawSample] = []
    for p in files:
        if not _is_image(p) or p.stem.endswith("_edgemask") or p.parent.name == "edgemask":
            continue
        if p.parent.name == "4cam_auth":
            samples.append(RawSample(p.stem, 0, p, None, f"columbia: {_rel(p, root)}"))
        elif p.parent.name == "4cam_splc":
            samples.append(RawSample(p.stem, 1, p, edge.get(p.stem), f"columbia: {_rel(p, root)}",
                                     mask_rule="columbia"))
    return samples


# ----------------------------------------------------------------------------- COVERAGE

_COVERAGE_IMAGE = re.compile(r"^(\d+)(t?)$")


def collect_coverage(root: Path, config: dict) -> list[RawSample]:
    """COVERAGE: ``image/NN.tif`` original (label 0), ``image/NNt.tif`` forged (label 1).

    Mask of ``NNt``: ``mask/NNforged.tif`` (the pasted region; ``NNcopy.tif`` and
    ``NNpaste.tif`` are the source and target of the copy and are not used). Layout from the
    dataset's description (Wen et al., ICIP 2016, https://github.com/wenbihan/coverage).
    """
    files = raw_files(root)
    forged = {}
    for p in files:
        m = re.match(r"^(\d+)forged$", p.stem)
        if m and p.parent.name == "mask":
            forged[m.group(1)] = p
    samples: list[RawSample] = []
    for p in files:
        if p.parent.name != "image" or not _is_image(p):
            continue
        m = _COVERAGE_IMAGE.match(p.stem)
        if not m:
            continue
        if m.group(2):
            samples.append(RawSample(p.stem, 1, p, forged.get(m.group(1)), f"coverage: {_rel(p, root)}"))
        else:
            samples.append(RawSample(p.stem, 0, p, None, f"coverage: {_rel(p, root)}"))
    return samples


# ----------------------------------------------------------------------------- registry entries

CASIA2 = DatasetSpec(
    name="casia2",
    title="CASIA Image Tampering Detection Evaluation Database v2.0",
    licence="research use; the original host (forensics.idealtest.org) is offline; ground truth by Pham et al.",
    citation="J. Dong, W. Wang, T. Tan, CASIA Image Tampering Detection Evaluation Database, ChinaSIP 2013; "
             "N. T. Pham et al., Hybrid Image-Retrieval Method for Image-Splicing Validation, Symmetry 11(1):83, 2019",
    homepage="https://github.com/namtpham/casia2groundtruth",
    collect=collect_casia2,
    masks_download=Download(
        url="https://github.com/namtpham/casia2groundtruth/archive/refs/heads/master.zip",
        sha256=None,  # not pinned: no published checksum, and a branch archive can change
        filename="casia2groundtruth-master.zip"),
    needs_masks_archive=True,
    manual=("download the CASIA 2.0 images by hand (the revised set linked from "
            "https://github.com/namtpham/casia2groundtruth, or the corrected set with ground truth linked from "
            "https://github.com/SunnyHaze/CASIA2.0-Corrected-Groundtruth), then run "
            "`weakloc data download casia2 --out data/raw/casia2 --archive PATH/TO/ARCHIVE.zip`"),
    notes="Masks: <stem>_gt.png (Pham et al.); SunnyHaze's corrected masks fix rotated/resized ones.",
)

CASIA1 = DatasetSpec(
    name="casia1",
    title="CASIA Image Tampering Detection Evaluation Database v1.0",
    licence="research use; ground truth by Pham et al.",
    citation="J. Dong, W. Wang, T. Tan, ChinaSIP 2013; N. T. Pham et al., Symmetry 11(1):83, 2019",
    homepage="https://github.com/namtpham/casia1groundtruth",
    collect=collect_casia1,
    masks_download=Download(
        url="https://github.com/namtpham/casia1groundtruth/raw/master/CASIA%201.0%20groundtruth.zip",
        sha256=None,  # not pinned: no published checksum found
        filename="CASIA 1.0 groundtruth.zip"),
    needs_masks_archive=True,
    manual=("download the CASIA 1.0 images by hand (Google Drive / OneDrive links in "
            "https://github.com/namtpham/casia1groundtruth), then run "
            "`weakloc data download casia1 --out data/raw/casia1 --archive PATH/TO/ARCHIVE.zip`"),
)

COLUMBIA = DatasetSpec(
    name="columbia",
    title="Columbia Uncompressed Image Splicing Detection Evaluation Dataset",
    licence="research use only, no redistribution (DVMM, Columbia University)",
    citation="Y.-F. Hsu, S.-F. Chang, Detecting Image Splicing Using Geometry Invariants and Camera "
             "Characteristics Consistency, ICME 2006",
    homepage="https://www.ee.columbia.edu/ln/dvmm/downloads/authsplcuncmp/",
    collect=collect_columbia,
    manual=("request the archive through the form at https://www.ee.columbia.edu/ln/dvmm/downloads/authsplcuncmp/ "
            "(dlform.html), then run "
            "`weakloc data download columbia --out data/raw/columbia --archive PATH/TO/ARCHIVE`"),
)

COVERAGE = DatasetSpec(
    name="coverage",
    title="COVERAGE: Copy-Move Forgery Database with Similar but Genuine Objects",
    licence="copyrighted; non-commercial research use only",
    citation="B. Wen, Y. Zhu, R. Subramanian, T.-T. Ng, X. Shen, S. Winkler, COVERAGE - A Novel Database for "
             "Copy-Move Forgery Detection, ICIP 2016",
    homepage="https://github.com/wenbihan/coverage",
    collect=collect_coverage,
    manual=("download COVERAGE by hand from the OneDrive link in https://github.com/wenbihan/coverage, then run "
            "`weakloc data download coverage --out data/raw/coverage --archive PATH/TO/COVERAGE.zip`"),
)

PUBLIC_DATASETS = (CASIA2, CASIA1, COLUMBIA, COVERAGE)
