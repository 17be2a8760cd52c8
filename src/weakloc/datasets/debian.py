"""Debian packages as archives of files: fetch a pinned ``.deb`` and read it without ``dpkg``.

A ``.deb`` is an ``ar`` archive (the ``!<arch>`` magic, then 60-byte member headers) whose
``data.tar.*`` member holds the installed files. Python's standard library reads that tar
(xz, gzip, bzip2 or plain), so the photographs of a package can be taken on any system.

Fetching goes through the ordinary client, ``apt-get download NAME=VERSION``, on a system
that has it; anywhere else the user drops the ``.deb`` files into a folder and names it
(``dataset.synthetic.deb_dir``). Either way the file's sha256 is checked against the pin
before the archive is opened, and a checked file is kept in the cache folder.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, file_sha256

AR_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class DebPackage:
    """One pinned Debian package: name, version (with its epoch, as apt spells it), sha256 of the ``.deb``."""

    name: str
    version: str
    sha256: str
    arch: str = "all"

    @property
    def filename(self) -> str:
        """The pool's file name: ``NAME_VERSION_ARCH.deb`` with the epoch dropped."""
        return f"{self.name}_{self.version.split(':', 1)[-1]}_{self.arch}.deb"

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}"


def ar_members(data: bytes, where: str) -> dict[str, bytes]:
    """The members of an ``ar`` archive: ``{name: bytes}``."""
    if data[:8] != AR_MAGIC:
        raise WeaklocError(f"{where}: not a Debian package (no ar header)")
    members: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise WeaklocError(f"{where}: corrupt ar member header at byte {pos}") from None
        body = data[pos + 60:pos + 60 + size]
        if len(body) != size:
            raise WeaklocError(f"{where}: truncated ar member {name!r}")
        members[name] = body
        pos += 60 + size + (size % 2)
    return members


def data_tar(path: str | Path) -> tarfile.TarFile:
    """The ``data.tar.*`` of a ``.deb`` opened for reading (members are read with ``extractfile``)."""
    path = Path(path)
    members = ar_members(path.read_bytes(), str(path))
    names = [n for n in members if n.startswith("data.tar")]
    if not names:
        raise WeaklocError(f"{path}: no data.tar member in this Debian package")
    if names[0].endswith(".zst"):
        raise WeaklocError(f"{path}: {names[0]} is zstd-compressed, which Python's tarfile cannot read; "
                           f"use the package version pinned by weakloc (xz-compressed)")
    try:
        return tarfile.open(fileobj=io.BytesIO(members[names[0]]), mode="r:*")
    except tarfile.TarError as exc:
        raise WeaklocError(f"{path}: unreadable {names[0]} ({exc})") from None


def read_member(tar: tarfile.TarFile, member: str, where: str) -> bytes:
    """The bytes of file ``member`` (a path as listed in the tar, ``./usr/...``)."""
    try:
        fh = tar.extractfile(member)
    except KeyError:
        fh = None
    if fh is None:
        raise WeaklocError(f"{where}: no file {member} in this package")
    return fh.read()


def _checked_copy(src: Path, pkg: DebPackage, dest: Path) -> Path | None:
    """Copy ``src`` to ``dest`` (atomically) when its sha256 is the pin's; None when it is another file."""
    if file_sha256(src) != pkg.sha256:
        return None
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def fetch_deb(pkg: DebPackage, cache_dir: str | Path, deb_dir: str | Path | None = None) -> Path:
    """The checked ``.deb`` of ``pkg`` in ``cache_dir``: from the cache, from ``deb_dir``, or through apt-get.

    Every path checks the file's sha256 against the pin before it is used. A file that fails
    the check is never opened. Raises :class:`WeaklocError` with one line saying what to do
    when the package cannot be had.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / pkg.filename
    if dest.is_file() and file_sha256(dest) == pkg.sha256:
        return dest
    how = (f"download {pkg.filename} (sha256 {pkg.sha256[:12]}...) by hand and put it in the folder "
           f"named by dataset.synthetic.deb_dir")
    if deb_dir is not None:
        folder = Path(deb_dir).expanduser()
        if not folder.is_dir():
            raise WeaklocError(f"key dataset.synthetic.deb_dir: {folder} is not a folder")
        # apt spells an epoch's ':' as '%3a' in file names; match on name and checksum, not spelling
        for candidate in sorted(folder.glob(f"{pkg.name}_*.deb")):
            if _checked_copy(candidate, pkg, dest):
                return dest
        raise WeaklocError(f"{folder}: no {pkg.name}_*.deb with the pinned sha256 {pkg.sha256[:12]}...; {how}")
    if shutil.which("apt-get") is None:
        raise WeaklocError(f"{pkg.spec}: apt-get is not available here; {how}")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".apt-") as tmp:
        done = subprocess.run(["apt-get", "download", "-q", pkg.spec], cwd=tmp, capture_output=True, text=True,
                              check=False)
        got = sorted(Path(tmp).glob(f"{pkg.name}_*.deb"))
        if done.returncode != 0 or not got:
            reason = (done.stderr.strip().splitlines() or ["no file"])[-1]
            raise WeaklocError(f"{pkg.spec}: apt-get download failed ({reason}); run `apt-get update` first, "
                               f"or {how}")
        if not _checked_copy(got[0], pkg, dest):
            raise WeaklocError(f"{pkg.spec}: the downloaded {got[0].name} does not have the pinned sha256 "
                               f"{pkg.sha256[:12]}...; {how}")
    return dest
