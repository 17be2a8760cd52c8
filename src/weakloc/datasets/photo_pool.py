"""The photo pool: the real photographs that ship inside Debian packages, pinned file by file.

``shared/design/PHOTOS.md`` lists which files of which packages are photographs (each looked at
by eye: real photographs, no identifiable people, a free licence). This module turns that list
into data:

- :data:`PACKAGES` pins each package's version and ``.deb`` sha256; :data:`SELECTIONS` says
  which files of it to take (GCompris keeps its photos inside Qt resource bundles,
  :mod:`weakloc.datasets.qt_resources`).
- :func:`survey` reads the ``.deb`` files once and writes ``photo_pool.csv`` (shipped inside
  the package): one row per photo with its sha256 and its licence record, read from the
  package itself (GCompris' per-bundle ``README``, Palapeli's ``.desktop`` files) or, where
  the package has none per file, from :data:`PACKAGES`.
- :func:`build_pool` fetches the packages (:func:`weakloc.datasets.debian.fetch_deb`), extracts
  the listed files, checks each photo's sha256, applies its EXIF orientation, and writes the
  photos and ``attribution.csv`` into a folder (the workflow's ``data/photos/debian``).
  Extracted photos are cached by sha256 under the user's cache folder, so a second build
  reads no package.

Nothing here runs unless a config asks for ``dataset.synthetic.photos: debian``; the tests
build small packages and bundles of their own.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import os
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, file_sha256

from .debian import DebPackage, data_tar, fetch_deb, read_member
from .qt_resources import read_bundle

#: The shipped list of photos (written by :func:`survey`).
POOL_CSV = Path(__file__).with_name("photo_pool.csv")
POOL_COLUMNS = ("name", "package", "member", "entry", "sha256", "licence", "credit", "source")
#: The columns of a built pool's ``attribution.csv``.
ATTRIBUTION_COLUMNS = ("file", "name", "width", "height", "licence", "credit", "source", "package", "sha256")


@dataclass(frozen=True)
class PoolPackage:
    """A pinned package and the licence of its files when the package records none per file."""

    deb: DebPackage
    licence: str = ""
    credit: str = ""


PACKAGES: dict[str, PoolPackage] = {p.deb.name: p for p in (
    PoolPackage(DebPackage("gcompris-qt-data", "3.1-2",
                           "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f")),
    PoolPackage(DebPackage("tuxpaint-data", "1:0.9.28-sdl2-1",
                           "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5"),
                "GPL-2+", "Bill Kendrick (Tux Paint)"),
    PoolPackage(DebPackage("lxqt-themes", "1.2.0-1",
                           "d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1"),
                "CC-BY-SA-3.0 (in-package License); LGPL-2.1+ (Debian copyright)",
                "LXQt Project Team; photographs by stefonarch"),
    PoolPackage(DebPackage("forensics-samples-files", "1.1.4-5",
                           "8710c751be1a71a88e343540ea1a5cab1fd349c2bcdf07626a27cfe68689e7c4"),
                "CC-BY-SA-4.0", "Joao Eriberto Mota Filho"),
    PoolPackage(DebPackage("palapeli-data", "4:22.12.3-1",
                           "69a15dce2ac25ed8708ac518cd0cee5f4eb0c70ed15da2fdb8899a19ac0ee058"),
                "GPL-2+ (Debian copyright)", ""),
    PoolPackage(DebPackage("scribus-template", "1.2.4.1-6",
                           "683bf35e43867cb17613d6807aa0238720d8526b1f524b9376404747a3e6128b"),
                "public domain", "Riku Leino"),
    PoolPackage(DebPackage("python3-scipy", "1.10.1-2",
                           "75175eb18aa9ef6424c69050a751335fe686c24b65bc1773d0769a74a21c869d", arch="amd64"),
                "BSD-3-Clause / public domain", "SciPy developers (scipy.misc.face)"),
)}


@dataclass(frozen=True)
class Selection:
    """Files to take from one package: tar members matching ``member`` and, for a Qt bundle,
    its entries matching one of ``entries`` (paths below the bundle's ``resource/`` folder)."""

    package: str
    member: str
    entries: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


_RCC = "./usr/share/gcompris-qt/rcc/{}.rcc"
_DETAIL_SITES = ("Chenonceau", "EgeskovSlotSpejling", "EilanDonanCastle", "FanoeWindmill", "GizahPyramids",
                 "Louvre_2007_02_24_c", "NDP", "Nagoya", "Neuschwanstein", "OperaSidney", "TajMahal", "TourEiffel",
                 "TowerBridgeLondon")
_LXQT = ("Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
         "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg")
_SCRIBUS = ("br2/brightness.jpg", "br2/halfmoon.jpg", "br2/moon.jpg", "br2/nature.jpg", "br2/sunset.jpg",
            "cal2/moon.jpg", "menu1/teriyaki.png", "menu2/pizza.jpg")

SELECTIONS: tuple[Selection, ...] = (
    Selection("gcompris-qt-data", _RCC.format("erase"), ("*.webp",)),
    Selection("gcompris-qt-data", _RCC.format("explore_monuments"), ("*/*.webp",)),
    Selection("gcompris-qt-data", _RCC.format("explore_world_animals"), ("animals/*.webp",)),
    Selection("gcompris-qt-data", _RCC.format("explore_farm_animals"), ("animals/*.webp",)),
    Selection("gcompris-qt-data", _RCC.format("explore_world_music"),
              ("music/africa.webp", "music/america.webp", "music/middleeast.webp")),
    Selection("gcompris-qt-data", _RCC.format("clickgame"), tuple(f"sea{i}.webp" for i in range(1, 7))),
    Selection("gcompris-qt-data", _RCC.format("details"), tuple(f"image/{s}_background.webp" for s in _DETAIL_SITES)),
    # three categorization monuments are explore_monuments' photos again: take those once
    Selection("gcompris-qt-data", _RCC.format("categorization"),
              tuple(f"images/{c}/*.webp" for c in ("fishes", "monuments", "others", "renewable", "tools"))
              + ("images/alphabets/alphabets.webp", "images/numbers/numbers.webp"),
              exclude=("images/monuments/colosseum.webp", "images/monuments/greatPyramid.webp",
                       "images/monuments/brandenburgGate.webp")),
    Selection("tuxpaint-data", "./usr/share/tuxpaint/templates/*.jpg"),
    Selection("tuxpaint-data", "./usr/share/tuxpaint/starters/reef-back.png"),
    Selection("tuxpaint-data", "./usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg"),
    *(Selection("lxqt-themes", f"./usr/share/lxqt/wallpapers/{n}") for n in _LXQT),
    Selection("forensics-samples-files", "./usr/share/forensics-samples/original-files/pic[12]/IMG*"),
    Selection("palapeli-data", "./usr/share/palapeli/collection/*.jpg"),
    *(Selection("scribus-template", f"./usr/share/scribus/templates/{n}") for n in _SCRIBUS),
    Selection("python3-scipy", "./usr/lib/python3/dist-packages/scipy/misc/face.dat"),
)

#: Licences of files whose package records them per file in another place than the survey reads.
_LICENCE_OVERRIDES = {
    "tuxpaint-data/starters/reef-back.png": ("public domain", "NOAA", ""),
    "tuxpaint-data/starters/skyline-sf-dusk-back.jpeg": ("public domain", "NOAA", ""),
}

# ----------------------------------------------------------------------------- licence records


#: Names that a GCompris README spells otherwise than its bundle does (checked by hand).
README_TYPOS = {"audaPalatina.webp": "aulaPalatina.webp", "screDriver.webp": "screwDriver.webp"}


def parse_gcompris_readme(text: str) -> list[dict]:
    """The stanzas of a GCompris resource ``README``: ``[{"files": [...], "licence", "credit", "source"}]``.

    Stanzas are separated by blank lines; ``Copyright:``, ``License:``, ``Source:`` and
    ``Comment:`` hold one value; file names (paths relative to the README's folder) follow
    ``Files:`` on its line and/or stand alone on the lines after it (some stanzas omit the
    ``Files:`` line itself). A comment (e.g. the original photographer) joins the credit.
    """
    stanzas = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        record: dict = {"files": [], "licence": "", "credit": "", "source": ""}
        comment = ""
        for line in block.splitlines():
            m = re.match(r"^(Copyright|License|Source|Files|Comments?):\s*(.*)$", line.strip(), re.IGNORECASE)
            key, value = (m.group(1).lower(), m.group(2).strip()) if m else ("", line.strip())
            if key == "files" or (not key and re.fullmatch(r"\S+\.\w+", value)):
                names = value.split()
                record["files"].extend(posixpath.join(posixpath.dirname(n), README_TYPOS.get(posixpath.basename(n),
                                                                                           posixpath.basename(n)))
                                       for n in names)
            elif key == "copyright":
                record["credit"] = value
            elif key == "license":
                record["licence"] = value
            elif key == "source":
                record["source"] = value
            elif key.startswith("comment"):
                comment = value
        if comment:
            record["credit"] = f"{record['credit']}; {comment}" if record["credit"] else comment
        if record["files"]:
            stanzas.append(record)
    return stanzas


def _readme_licences(files: dict[str, bytes]) -> dict[str, dict]:
    """``{bundle path of a file: its README record}`` for every README of a bundle."""
    out: dict[str, dict] = {}
    for path, data in files.items():
        if posixpath.basename(path) != "README":
            continue
        folder = posixpath.dirname(path)
        for record in parse_gcompris_readme(data.decode("utf-8", "replace")):
            for name in record["files"]:
                out[posixpath.normpath(posixpath.join(folder, name))] = record
    return out


def _desktop_licence(text: str) -> tuple[str, str, str]:
    """``(licence, author, website)`` from a Palapeli ``.desktop`` file."""
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return (fields.get("X-KDE-PluginInfo-License", ""), fields.get("X-KDE-PluginInfo-Author", ""),
            fields.get("X-KDE-PluginInfo-Website", ""))


# ----------------------------------------------------------------------------- survey


def _resource_root(path: str) -> str:
    """The part of a GCompris bundle path below ``.../resource/`` (the path itself when there is none)."""
    _, sep, tail = path.partition("/resource/")
    return tail if sep else path


def _short(package: str) -> str:
    return package.split("-")[0] if package.startswith("gcompris") else package


def _select_entries(files: dict[str, bytes], sel: Selection) -> list[str]:
    chosen = []
    for path in sorted(files):
        rel = _resource_root(path)
        if any(fnmatch.fnmatchcase(rel, pat) for pat in sel.entries) and rel not in sel.exclude:
            chosen.append(path)
    return chosen


def survey(deb_files: dict[str, Path], out_csv: Path = POOL_CSV) -> list[dict]:
    """Read the pinned ``.deb`` files (``{package: path}``) and write the pool's CSV.

    One row per selected photo: ``name`` (``<package>/<path>``), ``package``, ``member`` (the
    tar member), ``entry`` (the path inside a Qt bundle, or empty), ``sha256`` of the photo's
    bytes, and its ``licence``, ``credit`` and ``source`` records. Returns the rows.
    """
    rows: list[dict] = []
    tars = {}  # each package checked and opened once, however many selections read it
    for sel in SELECTIONS:
        pkg = PACKAGES[sel.package]
        path = deb_files[sel.package]
        if sel.package not in tars:
            if file_sha256(path) != pkg.deb.sha256:
                raise WeaklocError(f"{path}: not the pinned {pkg.deb.spec} (sha256 differs)")
            tars[sel.package] = data_tar(path)
        tar = tars[sel.package]
        members = sorted(m.name for m in tar.getmembers()
                         if m.isfile() and fnmatch.fnmatchcase(m.name, sel.member))
        if not members:
            raise WeaklocError(f"{path}: no file matches {sel.member}")
        for member in members:
            data = read_member(tar, member, str(path))
            if sel.entries:
                files = read_bundle(data, f"{path}:{member}")
                licences = _readme_licences(files)
                for entry in _select_entries(files, sel):
                    record = licences.get(entry, {})
                    rows.append({"name": f"{_short(sel.package)}/{posixpath.basename(member)[:-4]}/"
                                         f"{_resource_root(entry)}",
                                 "package": sel.package, "member": member, "entry": entry,
                                 "sha256": _sha256_bytes(files[entry]), "licence": record.get("licence", ""),
                                 "credit": record.get("credit", ""), "source": record.get("source", "")})
                continue
            name = f"{sel.package}/{'/'.join(member.split('/')[-2:])}"
            licence, credit, source = _LICENCE_OVERRIDES.get(name, (pkg.licence, pkg.credit, ""))
            if sel.package == "palapeli-data":
                desktop = read_member(tar, member[:-4] + ".desktop", str(path)).decode("utf-8", "replace")
                own, credit, source = _desktop_licence(desktop)
                licence = f"{own} (the image's .desktop); {pkg.licence}"
            rows.append({"name": name, "package": sel.package, "member": member, "entry": "",
                         "sha256": _sha256_bytes(data), "licence": licence, "credit": credit, "source": source})
    missing = [r["name"] for r in rows if not r["licence"]]
    if missing:
        raise WeaklocError(f"photo pool survey: no licence record for {len(missing)} photo(s), e.g. {missing[0]}")
    _write_csv(rows, out_csv)
    return rows


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_csv(rows: list[dict], path: Path, columns: tuple[str, ...] = POOL_COLUMNS) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def pool_rows(csv_path: Path = POOL_CSV) -> list[dict]:
    """The pool's photos as rows of :data:`POOL_COLUMNS` (the shipped CSV by default)."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- build


def default_cache_dir() -> Path:
    """``$WEAKLOC_CACHE``, else ``$XDG_CACHE_HOME/weakloc``, else ``~/.cache/weakloc``."""
    if os.environ.get("WEAKLOC_CACHE"):
        return Path(os.environ["WEAKLOC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "weakloc"


def decode_photo(data: bytes, name: str):
    """A photo's bytes as a Pillow RGB image with its EXIF orientation applied.

    SciPy's ``face.dat`` is a bz2 of raw ``768 x 1024 x 3`` uint8.
    """
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    if name.endswith("face.dat"):
        import bz2

        raw = np.frombuffer(bz2.decompress(data), dtype=np.uint8)
        if raw.size != 768 * 1024 * 3:
            raise WeaklocError(f"{name}: expected 768x1024x3 bytes, found {raw.size}")
        return Image.fromarray(raw.reshape(768, 1024, 3), mode="RGB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise WeaklocError(f"{name}: unreadable photo ({exc})") from None


def _is_raw(row: dict) -> bool:
    """Whether a photo is raw pixel data (SciPy's ``face.dat``), written as PNG, not as its bytes."""
    return row["name"].endswith(".dat")


def _photo_file_name(row: dict) -> str:
    """The pool folder's file name of a photo: its name with '/' as '__' (PNG for raw data)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", row["name"].replace("/", "__"))
    return stem.rsplit(".", 1)[0] + ".png" if _is_raw(row) else stem


def build_pool(out_dir: str | Path, cache_dir: str | Path | None = None, deb_dir: str | Path | None = None,
               rows: list[dict] | None = None, packages: dict[str, PoolPackage] | None = None,
               progress: bool = True) -> Path:
    """Write every pool photo into ``out_dir`` and its licence records into ``out_dir/attribution.csv``.

    The photos are extracted from the pinned packages (fetched into ``cache_dir/debs``) and
    checked against their sha256 before they are decoded; a checked photo's bytes are kept in
    ``cache_dir/photos/<sha256>`` so that a rebuild reads no package. Each photo is written as
    the package's bytes (readers apply the EXIF orientation, :func:`weakloc.io.read_rgb`), raw
    data (SciPy's face) as PNG; ``attribution.csv`` records the size as oriented. ``rows`` and
    ``packages`` default to the shipped pool (tests pass their own). The folder is built under
    a temporary name and renamed at the end. Returns ``out_dir``.
    """
    from tqdm import tqdm

    from weakloc.io import staged_dir

    rows = pool_rows() if rows is None else rows
    packages = PACKAGES if packages is None else packages
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    photo_cache = cache / "photos"
    photo_cache.mkdir(parents=True, exist_ok=True)
    todo = [r for r in rows if not (photo_cache / r["sha256"]).is_file()]
    for package in sorted({r["package"] for r in todo}):
        _extract_package(package, [r for r in todo if r["package"] == package], packages[package],
                         cache / "debs", deb_dir, photo_cache)
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        records = []
        for row in tqdm(rows, desc="photo pool", unit="photo", disable=not progress):
            data = (photo_cache / row["sha256"]).read_bytes()
            if _sha256_bytes(data) != row["sha256"]:  # a cache file changed on disk: never use it
                raise WeaklocError(f"{photo_cache / row['sha256']}: cached photo {row['name']} fails its sha256; "
                                   f"delete it and rerun")
            image = decode_photo(data, row["name"])
            file_name = _photo_file_name(row)
            if _is_raw(row):
                image.save(tmp / file_name, format="PNG")
            else:
                (tmp / file_name).write_bytes(data)
            records.append({**row, "file": file_name, "width": image.width, "height": image.height})
        _write_csv(records, tmp / "attribution.csv", ATTRIBUTION_COLUMNS)
    return out_dir


def _extract_package(package: str, rows: list[dict], pkg: PoolPackage, deb_cache: Path,
                     deb_dir: str | Path | None, photo_cache: Path) -> None:
    """Extract ``rows``' photos of one package into the photo cache, each checked by sha256."""
    deb = fetch_deb(pkg.deb, deb_cache, deb_dir)
    print(f"photo pool: reading {len(rows)} photo(s) from {deb.name}", file=sys.stderr)
    tar = data_tar(deb)
    bundles: dict[str, dict[str, bytes]] = {}
    for row in rows:
        if row["entry"]:
            if row["member"] not in bundles:
                bundles[row["member"]] = read_bundle(read_member(tar, row["member"], str(deb)),
                                                     f"{deb}:{row['member']}")
            data = bundles[row["member"]].get(row["entry"])
            if data is None:
                raise WeaklocError(f"{deb}:{row['member']}: no entry {row['entry']} (photo {row['name']})")
        else:
            data = read_member(tar, row["member"], str(deb))
        digest = _sha256_bytes(data)
        if digest != row["sha256"]:
            raise WeaklocError(f"{deb}: photo {row['name']} has sha256 {digest[:12]}..., "
                               f"pinned {row['sha256'][:12]}...")
        with atomic_path(photo_cache / digest) as tmp:
            tmp.write_bytes(data)
