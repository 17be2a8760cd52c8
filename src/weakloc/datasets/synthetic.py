"""The embedded synthetic forgery dataset, built from real photographs that ship in packages.

[ours] The paper trains on CASIA 2.0. This generator is the project's offline stand-in: it
needs nothing but installed packages, so the default study and the tests run anywhere.

What it makes (one square ``size`` x ``size`` RGB image per index, plus an exact mask):

- **Content.** Random rescaled crops (and horizontal flips) of the photographs in
  :data:`SOURCE_PHOTOS` (scikit-image and scikit-learn sample data; no portraits). The
  rescale factor is never exactly 1, so whatever JPEG traces the source files carry are
  resampled away before the image's own history begins.
- **Host history** (both classes, same distribution). The host is either never compressed
  (``uncompressed_fraction``) or JPEG-compressed and decoded once at ``q1`` (drawn from
  ``quality_range``), sometimes twice (``double_fraction``). Its JPEG grid is aligned with
  the final image's grid or, with ``host_grid_shift_fraction``, shifted (a crop after
  compression), so a shifted grid alone never says "manipulated".
- **Insertion** (manipulated only). A star-shaped region (smooth random blob, ellipse or
  polygon) whose area is log-uniform over ``region_area`` (a fraction of the image):

  * *splicing* pastes the region from a view of another photograph;
  * *copy-move* pastes the region from the same (already compressed) host, shifted.

  The pasted content has a JPEG history that differs from the host's, which is what the
  signed error level exposes: its grid is misaligned with the host's (a shift that is
  not a multiple of 8; ``misaligned_fraction``), and/or it was compressed at a quality
  ``q2`` at least ``min_quality_gap`` away from ``q1``, or it was never compressed while
  the host was (splicing), or resampled (scaled and rotated) so its grid is erased
  (copy-move). A spliced region's colours are sometimes matched to the host
  (``adjust_fraction``, a gain and offset) and its border is sometimes feathered
  (``feather_fraction``); the mask is then the set of pixels that are at least half
  pasted content.
- **Final save** (both classes). JPEG at ``q3`` from ``final_quality_range`` (4:2:0 or
  4:4:4 chroma) or, with ``png_fraction``, lossless PNG. A global colour adjustment is
  applied before the final save with ``global_adjust_fraction`` in both classes.

Authentic and manipulated images therefore share every global property (host history,
grid shift, global adjustment, final format and quality); they differ only in that one
region of a manipulated image has another JPEG history than the rest.

Determinism: image ``i`` depends only on ``(seed, i)`` and the settings (its own
``numpy.random.Generator`` from ``SeedSequence([seed, i])``; the label and the kind come
from the index through a low-discrepancy rule), so the same seed gives byte-identical
files and changing ``n_images`` leaves the earlier images unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from weakloc.config import Section
from weakloc.errors import WeaklocError

# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourcePhoto:
    """A photograph that ships inside an installed package, with its licence."""

    name: str
    package: str
    licence: str


_MIDDLEBURY = "Middlebury 2014 stereo benchmark (research use, cite Scharstein et al. 2014)"

#: The photographs, by the package that ships them: (name, licence) each, in the generator's order.
_PHOTOS_BY_PACKAGE: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("scikit-image", (("chelsea", "CC0 (Stefan van der Walt)"),
                      ("coffee", "CC0 (Rachel Michetti)"), ("rocket", "public domain (SpaceX)"),
                      ("motorcycle_left", _MIDDLEBURY), ("motorcycle_right", _MIDDLEBURY),
                      ("hubble_deep_field", "public domain (NASA)"),
                      ("immunohistochemistry", "no known copyright restrictions (CMMI)"),
                      ("retina", "CC0 (Mikael Haggstrom, Wikimedia Commons)"))),
    ("scikit-learn", (("china", "CC-BY 2.0 (danielbuechele on Flickr)"),
                      ("flower", "CC-BY 2.0 (vultilion on Flickr)"))),
)

SOURCE_PHOTOS: tuple[SourcePhoto, ...] = tuple(
    SourcePhoto(name, package, licence) for package, photos in _PHOTOS_BY_PACKAGE for name, licence in photos)


def _load_source(name: str) -> np.ndarray:
    if name in ("motorcycle_left", "motorcycle_right"):
        from skimage import data

        left, right, _ = data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data

    return getattr(data, name)()


@functools.lru_cache(maxsize=1)
def source_images() -> tuple[Image.Image, ...]:
    """The source photographs as Pillow RGB images, in :data:`SOURCE_PHOTOS` order (cached)."""
    out = []
    for photo in SOURCE_PHOTOS:
        try:
            arr = _load_source(photo.name)
        except Exception as exc:  # a package without its sample data
            raise WeaklocError(f"synthetic dataset: cannot load source photo {photo.name!r} from {photo.package} "
                               f"({exc})") from None
        arr = np.ascontiguousarray(np.asarray(arr)[..., :3], dtype=np.uint8)
        out.append(Image.fromarray(arr, mode="RGB"))
    return tuple(out)


def _folder_photos(folder: str, size: int) -> tuple[tuple[str, ...], tuple[Image.Image, ...]]:
    """The photographs of a user's folder (``dataset.synthetic.photos_dir``), sorted by file name."""
    from weakloc.io import IMAGE_SUFFIXES, read_rgb

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise WeaklocError(f"key dataset.synthetic.photos_dir: {root} is not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise WeaklocError(f"key dataset.synthetic.photos_dir: {root} holds {len(files)} image file(s); "
                           f"splicing needs at least 2 photographs")
    images = []
    for path in files:
        arr = read_rgb(path)  # one-line WeaklocError naming the file when unreadable
        h, w = arr.shape[:2]
        if min(h, w) < size:
            raise WeaklocError(f"{path}: photo is {w}x{h}, smaller than dataset.synthetic.size = {size} "
                               f"on its shorter side")
        images.append(Image.fromarray(arr, mode="RGB"))
    return tuple(p.name for p in files), tuple(images)


@functools.lru_cache(maxsize=4)
def _folder_photos_cached(folder: str, size: int, stamp: tuple) -> tuple[tuple[str, ...], tuple[Image.Image, ...]]:
    return _folder_photos(folder, size)


@dataclass(frozen=True)
class PhotoSet:
    """The generator's photographs: ``names`` and Pillow RGB ``images`` in a fixed order, and,
    when the dataset is split by photo, each photo's split (``splits``, same order)."""

    names: tuple[str, ...]
    images: tuple[Image.Image, ...]
    splits: tuple[str, ...] | None = None
    fractions: tuple[float, float, float, float] | None = None  # train, val, test, holdout (split by photo)

    def image_split(self, index: int, seed: int) -> str | None:
        """The split of image ``index`` when split by photo (a hash of seed and index against the fractions)."""
        if self.splits is None:
            return None
        digest = hashlib.sha256(f"split:{int(seed)}:{int(index)}".encode()).digest()
        u = int.from_bytes(digest[:8], "little") / 2.0**64
        train, val, test, _holdout = self.fractions
        return ("train" if u < train else "val" if u < train + val else "test" if u < train + val + test
                else "holdout")

    def choices(self, split: str | None) -> list[int]:
        """Indices of the photos an image of ``split`` may use (every photo when not split by photo)."""
        if split is None:
            return list(range(len(self.names)))
        split = "test" if split == "holdout" else split  # holdout images come from the test photos
        return [i for i, s in enumerate(self.splits) if s == split]


def photo_splits(names: tuple[str, ...], fractions: tuple[float, float, float], seed: int) -> tuple[str, ...]:
    """Each photo's split: photos ordered by ``sha256(seed:name)``, cut by the (train, val, test)
    fractions (the test photos serve the holdout images too).

    A split with a non-zero fraction gets at least 2 photos (a splice needs a donor). Raises
    :class:`WeaklocError` when there are too few photos for that.
    """
    wanted = [f > 0 for f in fractions]
    if len(names) < 2 * sum(wanted):
        raise WeaklocError(f"key dataset.synthetic.split_by: splitting {len(names)} photos by photo needs at least "
                           f"2 per split with a non-zero fraction")
    order = sorted(range(len(names)), key=lambda i: hashlib.sha256(f"{int(seed)}:{names[i]}".encode()).hexdigest())
    n_val, n_test = (max(2, int(round(f * len(names)))) if w else 0 for f, w in zip(fractions[1:], wanted[1:],
                                                                                    strict=True))
    n_train = len(names) - n_val - n_test if wanted[0] else 0  # train takes what val and test leave
    if wanted[0] and n_train < 2:
        raise WeaklocError(f"key dataset.synthetic.split_by: {len(names)} photos are too few to split by photo")
    out = [""] * len(names)
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * (len(names) - n_train - n_val)
    for rank, i in enumerate(order):
        out[i] = labels[rank]
    return tuple(out)


@functools.lru_cache(maxsize=2)
def _pool_photos(folder: str, stamp: tuple) -> tuple[tuple[str, ...], tuple[Image.Image, ...]]:
    import csv

    from weakloc.io import read_rgb

    root = Path(folder)
    with open(root / "attribution.csv", newline="", encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["name"])
    images = tuple(Image.fromarray(read_rgb(root / r["file"]), mode="RGB") for r in rows)
    return tuple(r["name"] for r in rows), images


def pool_photo_set(pool_dir: str | Path) -> tuple[tuple[str, ...], tuple[Image.Image, ...]]:
    """The Debian photo pool built in ``pool_dir`` (:func:`weakloc.datasets.photo_pool.build_pool`)
    and the package photos of :data:`SOURCE_PHOTOS`, sorted by name."""
    root = Path(pool_dir).expanduser()
    if not (root / "attribution.csv").is_file():
        raise WeaklocError(f"{root}: not a photo pool folder (no attribution.csv); build it with "
                           f"`weakloc data photos --out {root}`")
    stamp = (root / "attribution.csv").stat().st_mtime_ns
    names, images = _pool_photos(str(root.resolve()), (stamp,))
    own = list(zip((p.name for p in SOURCE_PHOTOS), source_images(), strict=True))
    both = sorted(list(zip(names, images, strict=True)) + own, key=lambda item: item[0])
    return tuple(n for n, _ in both), tuple(i for _, i in both)


def photo_set(settings: SyntheticSettings, pool_dir: str | Path | None = None,
              fractions: tuple[float, ...] | None = None, seed: int = 0) -> PhotoSet:
    """The generator's photographs, in a fixed order.

    ``photos_dir`` set: the image files of that folder sorted by file name (each readable and
    at least ``size`` pixels on its shorter side; at least two). Otherwise ``photos``:
    ``packages`` = :data:`SOURCE_PHOTOS`; ``debian`` = :func:`pool_photo_set` of ``pool_dir``.
    With ``split_by: photo``, ``fractions`` (train, val, test[, holdout]) and ``seed`` assign
    each photo its split (:func:`photo_splits`; the test photos serve the holdout images too).
    """
    if settings.photos_dir is not None:
        root = Path(settings.photos_dir).expanduser()
        # the cache is refreshed when a file of the folder changes (name, size or mtime)
        stamp = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir())) \
            if root.is_dir() else ()
        names, images = _folder_photos_cached(str(root), int(settings.size), stamp)
    elif settings.photos == "debian":
        if pool_dir is None:
            raise WeaklocError("key dataset.synthetic.photos: debian needs the photo pool; build it with "
                               "`weakloc data photos --out data/photos/debian` and pass --photo-pool to "
                               "`weakloc data prepare` (the workflow does both)")
        names, images = pool_photo_set(pool_dir)
    else:
        names, images = tuple(p.name for p in SOURCE_PHOTOS), source_images()
    if settings.split_by != "photo":
        return PhotoSet(names, images)
    if fractions is None:
        raise WeaklocError("key dataset.synthetic.split_by: photo needs the split fractions (dataset.splits)")
    train, val, test, holdout = (tuple(float(f) for f in fractions) + (0.0,))[:4]
    return PhotoSet(names, images, photo_splits(names, (train, val, test + holdout), seed),
                    (train, val, test, holdout))


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PostSettings(Section):
    """The ``dataset.synthetic.post`` section: what happens to a photo after it is made (both classes).

    With probability ``fraction`` an image gets one of four operations, chosen uniformly: a
    final JPEG re-save at a quality from ``quality_range`` (instead of the usual final save),
    a Gaussian blur with a kernel from ``blur_kernels``, Gaussian noise of a variance from
    ``noise_range``, or a bilinear resize by a factor from ``resize_range`` (the mask follows,
    nearest neighbour). The operations are :mod:`weakloc.perturb`'s, the robustness protocol's.
    """

    SECTION = "dataset.synthetic.post"

    fraction: float
    quality_range: tuple[int, int]
    blur_kernels: tuple[int, ...]
    noise_range: tuple[float, float]
    resize_range: tuple[float, float]

    def __post_init__(self) -> None:
        for key in ("quality_range", "noise_range", "resize_range"):
            lo, hi = getattr(self, key)
            if lo > hi:
                raise WeaklocError(f"key dataset.synthetic.post.{key}: minimum {lo} is above maximum {hi}")
            object.__setattr__(self, key, (type(lo)(lo), type(hi)(hi)))
        object.__setattr__(self, "blur_kernels", tuple(int(k) for k in self.blur_kernels))
        even = [k for k in self.blur_kernels if k % 2 == 0]
        if even:
            raise WeaklocError(f"key dataset.synthetic.post.blur_kernels: {even[0]} is even (kernel sizes are odd)")


@dataclass(frozen=True)
class SyntheticSettings(Section):
    """The ``dataset.synthetic`` config section (see the schema for each key's meaning).

    Build it with ``from_config`` or ``from_section``: a key the mapping lacks takes the schema's
    default. The three ranges become ``(low, high)`` tuples, low <= high.
    """

    SECTION = "dataset.synthetic"

    n_images: int
    size: int
    manipulated_fraction: float
    copy_move_fraction: float
    region_area: tuple[float, float]
    quality_range: tuple[int, int]
    final_quality_range: tuple[int, int]
    png_fraction: float
    uncompressed_fraction: float
    double_fraction: float
    host_grid_shift_fraction: float
    misaligned_fraction: float
    min_quality_gap: int
    adjust_fraction: float
    feather_fraction: float
    global_adjust_fraction: float
    photos_dir: str | None
    region_source: str
    object_scale: float
    object_work_side: int
    photos: str
    deb_dir: str | None
    split_by: str
    train_size: int | None
    post: PostSettings

    def __post_init__(self) -> None:
        if self.train_size is not None and self.split_by != "photo":
            raise WeaklocError("key dataset.synthetic.train_size: needs split_by: photo (the split must be known "
                               "when an image is generated)")
        for key in ("region_area", "quality_range", "final_quality_range"):
            lo, hi = getattr(self, key)
            if lo > hi:
                raise WeaklocError(f"key dataset.synthetic.{key}: minimum {lo} is above maximum {hi}")
            object.__setattr__(self, key, (type(lo)(lo), type(hi)(hi)))


def _is_chosen(index: int, fraction: float) -> bool:
    """Low-discrepancy choice: exactly floor(n * fraction) of the first n indices are chosen."""
    return math.floor((index + 1) * fraction + 1e-9) > math.floor(index * fraction + 1e-9)


def sample_kind(index: int, settings: SyntheticSettings) -> str:
    """``authentic``, ``splice`` or ``copymove`` for image ``index`` (independent of n_images)."""
    if not _is_chosen(index, settings.manipulated_fraction):
        return "authentic"
    k = math.floor(index * settings.manipulated_fraction + 1e-9)  # manipulated images before this one
    return "copymove" if _is_chosen(k, settings.copy_move_fraction) else "splice"


# ----------------------------------------------------------------------------- JPEG history


def jpeg_roundtrip(rgb: np.ndarray, quality: int, offset: tuple[int, int] = (0, 0), subsampling: int = 2) -> np.ndarray:
    """Compress ``(H, W, 3) uint8`` as JPEG at ``quality`` and decode it.

    ``offset = (dy, dx)`` (0..7 each) shifts the 8x8 grid: the grid's block corners fall on
    rows ``dy + 8k`` and columns ``dx + 8k`` of the returned image (edge padding fills the
    partial first block). ``subsampling`` is Pillow's code (0 = 4:4:4, 2 = 4:2:0).
    """
    dy, dx = offset
    src = np.pad(rgb, ((dy and 8 - dy, 0), (dx and 8 - dx, 0), (0, 0)), mode="edge") if (dy or dx) else rgb
    buf = io.BytesIO()
    Image.fromarray(src, mode="RGB").save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as img:
        out = np.asarray(img.convert("RGB"))
    return out[(dy and 8 - dy):, (dx and 8 - dx):].copy() if (dy or dx) else out.copy()


def _random_offset(rng: np.random.Generator) -> tuple[int, int]:
    """A grid offset that is not (0, 0)."""
    while True:
        dy, dx = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        if dy or dx:
            return dy, dx


def _quality_apart(rng: np.random.Generator, lo: int, hi: int, avoid: int | None, gap: int) -> int:
    """A quality in [lo, hi] at least ``gap`` from ``avoid`` (the nearest allowed one if none is)."""
    q = int(rng.integers(lo, hi + 1))
    if avoid is None or abs(q - avoid) >= gap:
        return q
    allowed = [v for v in range(lo, hi + 1) if abs(v - avoid) >= gap]
    if not allowed:  # a narrow range: go outside it rather than copy the host's quality
        allowed = [v for v in (avoid - gap, avoid + gap) if 1 <= v <= 100]
    return int(allowed[int(rng.integers(0, len(allowed)))])


def _random_view(photo: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random rescaled square crop of ``photo`` as ``(size, size, 3) uint8`` (maybe flipped).

    The crop side (in source pixels) is drawn so the rescale factor is never 1.
    """
    return _random_view_box(photo, size, rng)[0]


def _random_view_box(photo: Image.Image, size: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float], bool]:
    """:func:`_random_view` plus the crop box ``(x0, y0, x1, y1)`` and whether it was flipped."""
    w, h = photo.size
    side_max = min(w, h)
    side_min = min(side_max, 0.8 * size)
    side = float(rng.uniform(side_min, side_max))
    if abs(side - size) < 1.0:
        side = size + 1.5 if size + 1.5 <= side_max else size - 1.5
    x0 = float(rng.uniform(0, w - side))
    y0 = float(rng.uniform(0, h - side))
    img = photo.resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
    arr = np.asarray(img)
    flip = bool(rng.random() < 0.5)
    if flip:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr), (x0, y0, x0 + side, y0 + side), flip


def _colour_adjust(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Per-channel gain and offset (a colour match): ``(H, W, 3) uint8`` in, same out."""
    gain = 1.0 + rng.uniform(-strength, strength, size=3)
    bias = rng.uniform(-12 * strength, 12 * strength, size=3)
    return np.clip(rgb.astype(np.float32) * gain + bias + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- region shapes


def _radial_profile(rng: np.random.Generator, shape: str, thetas: np.ndarray) -> np.ndarray:
    """Radius r(theta) > 0 of a star-shaped region around its centre (unit scale)."""
    if shape == "ellipse":
        a, b = 1.0, float(rng.uniform(0.3, 1.0))
        phi = float(rng.uniform(0, np.pi))
        t = thetas - phi
        return a * b / np.sqrt((b * np.cos(t)) ** 2 + (a * np.sin(t)) ** 2)
    if shape == "polygon":
        k = int(rng.integers(3, 10))
        # keep vertices apart so the polygon stays star-shaped around the centre
        angles = np.sort((np.arange(k) + rng.uniform(-0.35, 0.35, size=k)) * (2 * np.pi / k)
                         + rng.uniform(0, 2 * np.pi)) % (2 * np.pi)
        angles = np.sort(angles)
        radii = rng.uniform(0.45, 1.0, size=k)
        px, py = radii * np.cos(angles), radii * np.sin(angles)
        th = thetas % (2 * np.pi)
        j = np.searchsorted(angles, th, side="right") - 1  # edge from vertex j to j+1 (wrapping)
        j0 = j % k
        j1 = (j + 1) % k
        ax, ay, bx, by = px[j0], py[j0], px[j1], py[j1]
        ux, uy = np.cos(th), np.sin(th)
        cross_ab = ax * by - ay * bx
        cross_u_e = ux * (by - ay) - uy * (bx - ax)
        return np.abs(cross_ab / np.where(np.abs(cross_u_e) < 1e-9, 1e-9, cross_u_e))
    # blob: a smooth random periodic radius (decaying Fourier series)
    n = 6
    amp = rng.normal(0, 1, size=n) * (0.35 / (np.arange(1, n + 1) ** 1.3))
    ph = rng.uniform(0, 2 * np.pi, size=n)
    r = 1.0 + sum(amp[i] * np.cos((i + 1) * thetas + ph[i]) for i in range(n))
    return np.maximum(r, 0.25)


def region_mask(size: int, area_fraction: float, rng: np.random.Generator, shape: str | None = None,
                centre: tuple[float, float] | None = None) -> tuple[np.ndarray, dict]:
    """A star-shaped region of ``round(area_fraction * size**2)`` pixels: ``(size, size) bool``.

    The region is the set of the N pixels with the largest ``r(theta) / distance`` around
    the centre, i.e. a scaled copy of the shape, so the area is exact (up to ties). The centre
    is drawn so the whole shape fits in the image when it can. Returns the mask and a dict
    with ``shape``, ``centre`` and the bounding box ``(y0, y1, x0, x1)``.
    """
    shape = shape or ("blob", "ellipse", "polygon")[int(rng.integers(0, 3))]
    n = max(1, int(round(area_fraction * size * size)))
    thetas = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = _radial_profile(rng, shape, thetas)
    unit_area = 0.5 * float(np.mean(r**2)) * 2 * np.pi
    k = math.sqrt(n / unit_area)
    ext_x = (k * float(np.min(r * np.cos(thetas))), k * float(np.max(r * np.cos(thetas))))
    ext_y = (k * float(np.min(r * np.sin(thetas))), k * float(np.max(r * np.sin(thetas))))
    if centre is None:
        def pick(ext):
            lo, hi = -ext[0], size - 1 - ext[1]
            return float(rng.uniform(lo, hi)) if lo <= hi else (size - 1) / 2 - (ext[0] + ext[1]) / 2
        centre = (pick(ext_y), pick(ext_x))
    cy, cx = centre
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    dist = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx) % (2 * np.pi)
    idx = np.minimum((theta / (2 * np.pi) * len(thetas)).astype(int), len(thetas) - 1)
    score = r[idx] / np.maximum(dist, 1e-3)
    flat = score.ravel()
    top = np.argpartition(-flat, n - 1)[:n]
    mask = np.zeros(size * size, dtype=bool)
    mask[top] = True
    mask = mask.reshape(size, size)
    ys, xs = np.nonzero(mask)
    info = {"shape": shape, "centre": (cy, cx),
            "bbox": (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)}
    return mask, info


def _copy_shift(bbox: tuple[int, int, int, int], size: int, rng: np.random.Generator,
                misaligned: bool) -> tuple[int, int] | None:
    """A shift (dy, dx) so that the source region (target minus shift) lies inside the image.

    ``misaligned``: the shift is not a multiple of 8 in at least one axis; otherwise it is a
    multiple of 8 in both. None when no shift of at least 8 pixels fits.
    """
    y0, y1, x0, x1 = bbox
    lo_y, hi_y = y1 - size, y0  # source rows y - dy must stay in [0, size)
    lo_x, hi_x = x1 - size, x0
    for _ in range(50):
        dy = int(rng.integers(lo_y, hi_y + 1))
        dx = int(rng.integers(lo_x, hi_x + 1))
        if max(abs(dy), abs(dx)) < 8:
            continue
        aligned = dy % 8 == 0 and dx % 8 == 0
        if misaligned and aligned:
            continue
        if not misaligned and not aligned:
            dy, dx = 8 * round(dy / 8), 8 * round(dx / 8)
            if not (lo_y <= dy <= hi_y and lo_x <= dx <= hi_x) or max(abs(dy), abs(dx)) < 8:
                continue
        return dy, dx
    return None


def _resample_patch(rgb: np.ndarray, centre: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Rotate and scale ``rgb`` slightly around ``centre`` (erases the JPEG grid's phase)."""
    scale = float(rng.uniform(0.85, 1.2))
    if abs(scale - 1.0) < 0.04:
        scale = 1.08
    angle = math.radians(float(rng.uniform(-15, 15)))
    cy, cx = centre
    # output (x, y) -> input: inverse of scale+rotate about the centre
    ca, sa = math.cos(angle) / scale, math.sin(angle) / scale
    a, b, d, e = ca, sa, -sa, ca
    c = cx - a * cx - b * cy
    f = cy - d * cx - e * cy
    img = Image.fromarray(rgb, mode="RGB").transform(
        (rgb.shape[1], rgb.shape[0]), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BICUBIC)
    return np.asarray(img)


# ----------------------------------------------------------------------------- one sample


@dataclass
class SyntheticSample:
    """One generated sample: the encoded file, its suffix, mask, label and recipe."""

    data: bytes
    suffix: str  # ".jpg" or ".png"
    mask: np.ndarray  # (H, W) bool: (size, size), or smaller after a post-processing downscale
    label: int
    recipe: str
    split: str | None = None  # set when the dataset is split by photo


def _history(rgb: np.ndarray, rng: np.random.Generator,
             s: SyntheticSettings) -> tuple[np.ndarray, list[str], int | None]:
    """Apply a host JPEG history; returns the decoded image, recipe parts and the last quality."""
    parts: list[str] = []
    if rng.random() < s.uncompressed_fraction:
        return rgb, ["host=uncompressed"], None
    shifted = rng.random() < s.host_grid_shift_fraction
    off = _random_offset(rng) if shifted else (0, 0)
    sub = 2 if rng.random() < 0.75 else 0
    q1 = int(rng.integers(s.quality_range[0], s.quality_range[1] + 1))
    out = jpeg_roundtrip(rgb, q1, off, sub)
    parts.append(f"host=jpeg q1={q1} grid={off[0]}x{off[1]} sub={'420' if sub else '444'}")
    q_last = q1
    if rng.random() < s.double_fraction:
        qb = int(rng.integers(s.quality_range[0], s.quality_range[1] + 1))
        off_b = off if rng.random() < 0.5 else _random_offset(rng)
        out = jpeg_roundtrip(out, qb, off_b, sub)
        parts.append(f"host2=jpeg q={qb} grid={off_b[0]}x{off_b[1]}")
        q_last = qb
    return out, parts, q_last


def _object_region(kind: str, photos, choices: list[int], host_i: int, host_view, area: float, misaligned: bool,
                   rng: np.random.Generator, s: SyntheticSettings) -> tuple[np.ndarray, dict] | None:
    """An object-shaped region (``region_source: objects``, :mod:`weakloc.datasets.objects`).

    Splicing: an object of a donor photo's view, pasted where it lies in that view (``info``
    carries the donor). Copy-move: an object of the host's view, moved by a shift that keeps
    it inside the image (``info`` carries the shift). None when no object fits the area range.
    """
    from weakloc.datasets.objects import ObjectSettings, object_region, photo_partition, view_labels

    size = s.size
    osettings = ObjectSettings(scale=float(s.object_scale), work_side=int(s.object_work_side))
    info: dict = {"shape": "object"}
    if kind == "splice":
        donor_choices = [i for i in choices if i != host_i]
        donor_i = donor_choices[int(rng.integers(0, len(donor_choices)))]
        view, box, flip = _random_view_box(photos[donor_i], size, rng)
        photo = photos[donor_i]
        info["donor"] = (donor_i, view)
    else:
        view, box, flip = host_view
        photo = photos[host_i]
    labels = view_labels(photo_partition(photo, osettings), photo.size, box, (size, size), flip)
    region = object_region(labels, view, area, s.region_area, rng)
    if region is None:
        return None
    ys, xs = np.nonzero(region)
    info["bbox"] = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    info["centre"] = (float(ys.mean()), float(xs.mean()))
    if kind != "splice":
        # the object stays where it is in the host and is copied to region + shift
        back = _copy_shift(info["bbox"], size, rng, misaligned)
        if back is None:
            return None
        dy, dx = -back[0], -back[1]
        region = np.roll(region, (dy, dx), axis=(0, 1))
        y0, y1, x0, x1 = info["bbox"]
        info["bbox"] = (y0 + dy, y1 + dy, x0 + dx, x1 + dx)
        info["centre"] = (info["centre"][0] + dy, info["centre"][1] + dx)
        info["shift"] = (dy, dx)
    return region, info


def _splice_content(info: dict, names, photos, choices: list[int], host_i: int, misaligned: bool,
                    q_host: int | None, parts: list[str], rng: np.random.Generator, s: SyntheticSettings) -> np.ndarray:
    """The pasted content of a splice: a donor photo's view with its own JPEG history, ``(size, size, 3) uint8``."""
    if "donor" in info:  # the object's own photo
        donor_i, donor = info["donor"]
    else:
        donor_choices = [i for i in choices if i != host_i]
        donor_i = donor_choices[int(rng.integers(0, len(donor_choices)))]
        donor = _random_view(photos[donor_i], s.size, rng)
    off = _random_offset(rng) if misaligned else (0, 0)
    donor_uncompressed = q_host is not None and rng.random() < 0.25
    if donor_uncompressed:
        parts.append(f"donor={names[donor_i]} uncompressed")
    else:
        gap = 0 if (misaligned and rng.random() < 0.5) else s.min_quality_gap
        q2 = _quality_apart(rng, s.quality_range[0], s.quality_range[1], q_host, gap)
        donor = jpeg_roundtrip(donor, q2, off, 2 if rng.random() < 0.75 else 0)
        parts.append(f"donor={names[donor_i]} q2={q2} grid={off[0]}x{off[1]}")
    if rng.random() < s.adjust_fraction:
        donor = _colour_adjust(donor, rng, 0.15)
        parts.append("colour-matched")
    return donor


def _copy_content(host: np.ndarray, region: np.ndarray, info: dict, area: float, misaligned: bool,
                  q_host: int | None, parts: list[str], rng: np.random.Generator,
                  s: SyntheticSettings) -> tuple[np.ndarray, np.ndarray, dict]:
    """The pasted content of a copy-move: the host shifted (and edited when a plain copy would leave
    no trace). Returns ``(content (size, size, 3) uint8, region, info)``; the region shrinks when it
    is too large for a clean shift."""
    shift = info["shift"] if "shift" in info else _copy_shift(info["bbox"], s.size, rng, misaligned or q_host is None)
    if shift is None:  # region too large for a clean shift: make it smaller
        region, info = region_mask(s.size, max(s.region_area[0], area / 3), rng, info["shape"])
        shift = _copy_shift(info["bbox"], s.size, rng, True) or (8 + 3, 5)
        parts[-1] = f"kind=copymove shape={info['shape']} area={region.mean():.4f}"
    dy, dx = shift
    content = np.roll(host, (dy, dx), axis=(0, 1))  # content[y, x] = host[y - dy, x - dx]
    parts.append(f"shift={dy}x{dx}")
    aligned = dy % 8 == 0 and dx % 8 == 0
    if q_host is None or aligned:
        # an aligned or uncompressed copy leaves no trace: the copy was also edited
        if q_host is None or rng.random() < 0.5:
            q2 = _quality_apart(rng, s.quality_range[0], s.quality_range[1], q_host, s.min_quality_gap)
            off = _random_offset(rng) if q_host is None else (0, 0)
            content = jpeg_roundtrip(content, q2, off)
            parts.append(f"copy q2={q2} grid={off[0]}x{off[1]}")
        else:
            content = _resample_patch(content, info["centre"], rng)
            parts.append("copy resampled")
    return content, region, info


def _paste(host: np.ndarray, content: np.ndarray, region: np.ndarray, feather: bool, parts: list[str],
           rng: np.random.Generator, s: SyntheticSettings) -> tuple[np.ndarray, np.ndarray]:
    """``content`` pasted into ``host`` over ``region`` (with a blurred border when ``feather``).

    Returns ``(image (size, size, 3) uint8, mask (size, size) bool)``: a feathered mask is where
    the pasted content is at least half, kept only while its area stays in ``region_area``.
    """
    if feather:
        from scipy.ndimage import gaussian_filter

        lo, hi = s.region_area
        sigma = float(rng.uniform(0.6, 1.5))
        alpha = gaussian_filter(region.astype(np.float32), sigma)
        new_region = alpha >= 0.5
        if new_region.any() and lo <= new_region.mean() <= hi:
            a = alpha[..., None]
            image = np.clip(host * (1 - a) + content * a + 0.5, 0, 255).astype(np.uint8)
            # pixels in the mask are mostly pasted content; outside, mostly host
            parts.append(f"feather={sigma:.2f}")
            return image, new_region
    return np.where(region[..., None], content, host), region


def _manipulate(kind: str, names, photos, choices: list[int], host_i: int, host_view: tuple, host: np.ndarray,
                q_host: int | None, parts: list[str], rng: np.random.Generator,
                s: SyntheticSettings) -> tuple[np.ndarray, np.ndarray]:
    """Insert one region into ``host`` (``kind`` splice or copymove); ``host_view`` is the host's
    ``(view before its history, box, flip)``. Returns ``(image, mask (size, size) bool)``."""
    lo, hi = s.region_area
    area = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    misaligned = rng.random() < s.misaligned_fraction
    feather = rng.random() < s.feather_fraction
    found = None
    if s.region_source == "objects":
        found = _object_region(kind, photos, choices, host_i, host_view, area, misaligned or q_host is None, rng, s)
    region, info = found if found is not None else region_mask(s.size, area, rng)
    parts.append(f"kind={kind} shape={info['shape']} area={region.mean():.4f}")
    if kind == "splice":
        content = _splice_content(info, names, photos, choices, host_i, misaligned, q_host, parts, rng, s)
    else:  # copy-move from the host itself
        content, region, info = _copy_content(host, region, info, area, misaligned, q_host, parts, rng, s)
    return _paste(host, content, region, feather, parts, rng, s)


def _post_process(image: np.ndarray, mask: np.ndarray, parts: list[str], rng: np.random.Generator,
                  post: PostSettings) -> tuple[np.ndarray, np.ndarray, int | None]:
    """What happens to a photo after it is made (:class:`PostSettings`): ``(image, mask, final
    JPEG quality or None)``. Draws nothing when ``post.fraction`` is 0 (older datasets keep their bytes)."""
    from weakloc import perturb

    if post.fraction <= 0 or rng.random() >= post.fraction:
        return image, mask, None
    op = ("jpeg", "blur", "noise", "resize")[int(rng.integers(0, 4))]
    if op == "jpeg":
        q = int(rng.integers(post.quality_range[0], post.quality_range[1] + 1))
        parts.append(f"post=jpeg q={q}")
        return image, mask, q
    if op == "blur":
        k = post.blur_kernels[int(rng.integers(0, len(post.blur_kernels)))]
        parts.append(f"post=blur k={k}")
        return perturb.gaussian_blur(image, k), mask, None
    if op == "noise":
        variance = float(rng.uniform(*post.noise_range))
        parts.append(f"post=noise var={variance:.2f}")
        return perturb.gaussian_noise(image, variance, rng), mask, None
    factor = float(rng.uniform(*post.resize_range))
    parts.append(f"post=resize f={factor:.3f}")
    image, mask = perturb.resize_pair(image, mask, factor)
    return image, mask, None


def _final_save(image: np.ndarray, parts: list[str], rng: np.random.Generator, s: SyntheticSettings,
                quality: int | None = None) -> tuple[bytes, str]:
    """The final save of ``(H, W, 3) uint8``: ``(file bytes, suffix)``; ``quality`` forces a JPEG at it."""
    buf = io.BytesIO()
    if quality is None and rng.random() < s.png_fraction:
        Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=6)
        suffix = ".png"
        parts.append("final=png")
    else:
        q3 = quality if quality is not None else int(rng.integers(s.final_quality_range[0],
                                                                  s.final_quality_range[1] + 1))
        sub = 2 if rng.random() < 0.7 else 0
        Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=q3, subsampling=sub)
        suffix = ".jpg"
        parts.append(f"final=jpeg q3={q3} sub={'420' if sub else '444'}")
    return buf.getvalue(), suffix


def generate_sample(index: int, seed: int, settings: SyntheticSettings,
                    photos: PhotoSet | None = None) -> SyntheticSample:
    """Generate image ``index`` of the dataset for ``seed`` (depends on nothing else).

    ``photos``: the generator's photographs (default :func:`photo_set` of ``settings``; a
    dataset split by photo or built from the Debian pool passes its own). The steps draw from
    one generator in a fixed order: the host view and its history, then (manipulated) the
    region and the pasted content, then the global adjustment, the post-processing and the
    final save. With ``split_by: photo`` the image's split is fixed first (by its index) and
    host and donor come from that split's photos; a training image is made at ``train_size``.
    """
    s = settings
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    photos = photo_set(s) if photos is None else photos
    split = photos.image_split(index, seed)
    if split == "train" and s.train_size is not None:
        s = dataclasses.replace(s, size=int(s.train_size))
    choices = photos.choices(split)
    names, images = photos.names, photos.images
    kind = sample_kind(index, s)
    host_i = choices[int(rng.integers(0, len(choices)))]
    host_view = _random_view_box(images[host_i], s.size, rng)
    host, parts, q_host = _history(host_view[0], rng, s)
    parts.insert(0, f"photo={names[host_i]}")
    if kind != "authentic":
        image, mask = _manipulate(kind, names, images, choices, host_i, host_view, host, q_host, parts, rng, s)
    else:
        image, mask = host, np.zeros((s.size, s.size), dtype=bool)
        parts.append("kind=authentic")
    if rng.random() < s.global_adjust_fraction:
        image = _colour_adjust(image, rng, 0.1)
        parts.append("global-adjust")
    image, mask, quality = _post_process(image, mask, parts, rng, s.post)
    data, suffix = _final_save(image, parts, rng, s, quality)
    return SyntheticSample(data, suffix, mask, 0 if kind == "authentic" else 1, "; ".join(parts), split)


def sample_id(index: int) -> str:
    """The manifest id of synthetic image ``index``."""
    return f"syn{index:05d}"


def generate_synthetic(config: dict, out_dir: Path, progress: bool = True,
                       pool_dir: str | Path | None = None) -> list[dict]:
    """Write every synthetic image and mask into ``out_dir/images`` and ``out_dir/masks``.

    ``config`` is the validated study config (reads ``dataset.seed``, ``dataset.splits`` and
    ``dataset.synthetic``); ``pool_dir`` is the built photo pool (``photos: debian``). Returns
    manifest rows with absolute paths; a row has ``split`` when the dataset is split by photo.
    """
    from tqdm import tqdm

    from weakloc.io import write_mask

    settings = SyntheticSettings.from_config(config)
    seed = int(config["dataset"]["seed"])
    fractions = tuple(float(config["dataset"]["splits"][k]) for k in ("train", "val", "test", "holdout"))
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    photos = photo_set(settings, pool_dir, fractions, seed)  # load (and check) the photos before the progress bar
    for i in tqdm(range(settings.n_images), desc="synthetic images", unit="img", disable=not progress):
        smp = generate_sample(i, seed, settings, photos)
        sid = sample_id(i)
        image_path = out_dir / "images" / f"{sid}{smp.suffix}"
        image_path.write_bytes(smp.data)
        mask_path = out_dir / "masks" / f"{sid}.png"
        write_mask(smp.mask, mask_path)
        row = {"id": sid, "label": smp.label, "image": str(image_path), "mask": str(mask_path),
               "width": int(smp.mask.shape[1]), "height": int(smp.mask.shape[0]), "source": "synthetic: " + smp.recipe}
        if smp.split is not None:
            row["split"] = smp.split
        rows.append(row)
    return rows
