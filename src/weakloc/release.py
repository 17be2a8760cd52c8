"""The released model: the one trained checkpoint that ships inside the package.

``weakloc localize`` and :class:`weakloc.Localizer` use it when no checkpoint is given (and
say so in ``run.json`` and the gallery). Its data, recipe, training time, numbers and limits
are in docs/model-card.md; ``make release-model`` retrains the candidate (configs/release.yaml)
and prints the comparison that decides which checkpoint ships.

The file is pinned by sha256 here and checked before it is loaded (with
``torch.load(..., weights_only=True)``, :func:`weakloc.wcbnet.load_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

from weakloc.errors import WeaklocError
from weakloc.io import file_sha256

#: The shipped checkpoint (under ``weakloc/models/``), its sha256 and where it comes from.
RELEASED = {
    "file": "wcbnet-synthetic-seed0.pt",
    "sha256": "46cafc0d33aae9aa7cdbcc91a5007101656a396a6a62bc765933fd59a3c06a5e",
    "trained_by": "the default study (config.yaml, seed 0): `make reproduce` on a fresh clone, 2026-12-07",
    "card": "docs/model-card.md",
}


def released_checkpoint() -> Path:
    """The path of the released checkpoint inside the installed package, its sha256 checked."""
    path = Path(__file__).parent / "models" / RELEASED["file"]
    if not path.is_file():
        raise WeaklocError(f"{path}: the released model is missing from this installation "
                           "(reinstall weakloc, or give --checkpoint)")
    digest = file_sha256(path)
    if digest != RELEASED["sha256"]:
        raise WeaklocError(f"{path}: sha256 {digest[:12]}... is not the released model's "
                           f"{RELEASED['sha256'][:12]}... (reinstall weakloc, or give --checkpoint)")
    return path


def released_info() -> dict:
    """What ``run.json`` records of the released model."""
    return {"released": True, **RELEASED}
