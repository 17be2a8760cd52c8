"""Downloading and extracting raw datasets into ``data/raw/<name>/``.

Downloads go through pooch (sha256 check where the registry pins one, retries, a progress
bar on stderr). Archives (zip and tar, compressed or not) are extracted safely: a member
whose path would land outside the target folder (``..``, an absolute path, a link pointing
outside) stops the extraction with a :class:`WeaklocError` naming the archive and the
member. Extraction happens in a temporary folder beside the target, renamed at the end, so
an interrupted download leaves nothing half-made.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

from weakloc.errors import WeaklocError
from weakloc.io import staged_dir

from .public import ground_truth_masks, raw_files
from .registry import get_dataset
from .spec import DatasetSpec, Download


def fetch(download: Download, dest_dir: str | Path, retries: int = 3, progress: bool = True) -> Path:
    """Download ``download.url`` into ``dest_dir/download.filename`` through pooch.

    The sha256 is checked when the registry pins one (``download.sha256``); an existing file
    with the right checksum is not downloaded again. Returns the file's path. A failed
    download or a checksum mismatch raises :class:`WeaklocError` naming the URL.
    """
    import pooch

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    known = f"sha256:{download.sha256}" if download.sha256 else None
    store = pooch.create(path=dest_dir, base_url="", registry={download.filename: known},
                         urls={download.filename: download.url}, retry_if_failed=retries)
    try:
        return Path(store.fetch(download.filename, progressbar=progress))
    except ValueError as exc:  # pooch's checksum mismatch
        raise WeaklocError(f"{download.url}: checksum mismatch for {download.filename} ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - requests/pooch raise many kinds; report them all
        raise WeaklocError(f"{download.url}: download failed ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _inside(root: Path, target: str) -> bool:
    """Whether ``root / target`` (target relative, already normalised) stays below ``root``."""
    resolved = (root / target).resolve()
    return resolved == root or root in resolved.parents


def _unsafe(name: str, root: Path) -> str | None:
    """Why member ``name`` may not be extracted below ``root`` (None when it is safe)."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in Path(name.replace("\\", "/")).parts:
        return "path with '..'"
    if not _inside(root, name):
        return "path outside the target folder"
    return None


def _check_zip(zf: zipfile.ZipFile, archive: Path, root: Path) -> None:
    for info in zf.infolist():
        why = _unsafe(info.filename, root)
        if why is None and stat.S_ISLNK(info.external_attr >> 16):
            link = zf.read(info).decode("utf-8", "replace")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(info.filename), link))
            if link.startswith("/") or not _inside(root, target):
                why = f"symbolic link to {link!r} outside the target folder"
        if why:
            raise WeaklocError(f"{archive}: refusing to extract member {info.filename!r} ({why})")


def _check_tar(tf: tarfile.TarFile, archive: Path, root: Path) -> list[tarfile.TarInfo]:
    members = []
    for m in tf.getmembers():
        why = _unsafe(m.name, root)
        if why is None and (m.issym() or m.islnk()):
            if m.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(m.name), m.linkname))
            else:
                target = posixpath.normpath(m.linkname)
            if m.linkname.startswith("/") or not _inside(root, target):
                kind = "symbolic" if m.issym() else "hard"
                why = f"{kind} link to {m.linkname!r} outside the target folder"
        if why is None and (m.isdev() or m.isfifo()):
            why = "device or FIFO member"
        if why:
            raise WeaklocError(f"{archive}: refusing to extract member {m.name!r} ({why})")
        members.append(m)
    return members


def extract_archive(archive: str | Path, dest: str | Path) -> Path:
    """Extract a zip or tar archive into ``dest`` (created), refusing unsafe members.

    Every member is checked before anything is written. Returns ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    if archive.is_dir():
        raise WeaklocError(f"{archive}: is a folder, not an archive; pass it to "
                           f"`weakloc data prepare --raw {archive}` instead")
    if not archive.is_file():
        raise WeaklocError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(zf, archive, root)
            zf.extractall(dest)
        return dest
    try:
        is_tar = tarfile.is_tarfile(archive)
    except OSError:
        is_tar = False
    if is_tar:
        with tarfile.open(archive) as tf:
            members = _check_tar(tf, archive, root)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tf.extractall(dest, members=members)
        return dest
    raise WeaklocError(f"{archive}: not a zip or tar archive (extract it yourself, e.g. a .rar, "
                       f"and pass the folder to `weakloc data prepare --raw DIR`)")


def _has_masks(folder: Path) -> bool:
    return bool(ground_truth_masks(raw_files(folder)))


def download_dataset(name: str, out_dir: str | Path, archive: str | Path | None = None,
                     masks_archive: str | Path | None = None, progress: bool = True) -> Path | None:
    """Fill ``out_dir`` (``data/raw/<name>``) with the extracted raw files of dataset ``name``.

    ``archive``: an archive the user downloaded by hand (needed where the registry has no
    stable URL; the error message says where to get it). ``masks_archive``: a ground-truth
    archive; for CASIA the public masks are otherwise fetched from their URL when the image
    archive brings none. ``synthetic`` and ``folder`` have nothing to download: returns None
    after printing a message. Replaces an existing ``out_dir`` only when everything
    succeeded.
    """
    spec: DatasetSpec = get_dataset(name)
    if spec.name in ("synthetic", "folder"):
        print(f"weakloc data download: dataset {name!r} has nothing to download "
              f"({'generated by' if name == 'synthetic' else 'read from dataset.folder.path by'} "
              f"`weakloc data prepare`)",
              file=sys.stderr)
        return None
    out_dir = Path(out_dir)
    cache = out_dir.parent / f".{out_dir.name}.downloads"  # kept between tries, so a rerun resumes
    with staged_dir(out_dir) as tmp:
        if spec.downloads:
            for item in spec.downloads:
                extract_archive(fetch(item, cache, progress=progress), tmp)
        elif archive is None:
            raise WeaklocError(f"dataset {name} has no stable download URL: {spec.manual} (or set dataset.archive)")
        if archive is not None:
            extract_archive(archive, tmp)
        if masks_archive is not None:
            extract_archive(masks_archive, tmp / "groundtruth")
        elif spec.needs_masks_archive and not _has_masks(tmp) and spec.masks_download is not None:
            extract_archive(fetch(spec.masks_download, cache, progress=progress), tmp / "groundtruth")
    shutil.rmtree(cache, ignore_errors=True)
    return out_dir
