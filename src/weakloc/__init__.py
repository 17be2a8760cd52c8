"""weakloc: weakly-supervised localization of manipulated image regions.

A reconstruction of WSWCBnet (Wang & Abhayaratne, arXiv 2505.23586): WCBnet on signed error
levels, activation maps per block, their fusion, and Bayesian refinement with segmenter
regions. See docs/method.md for what is the paper's and what is ours.
"""

from weakloc.version import __version__

__all__ = ["Localizer", "Localization", "__version__"]


def __getattr__(name: str):
    # Imported on first use, so that `import weakloc` (and the CLI's start-up) stays free of torch.
    if name in ("Localizer", "Localization"):
        from weakloc import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'weakloc' has no attribute {name!r}")
