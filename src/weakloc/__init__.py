"""weakloc: weakly-supervised localization of manipulated image regions.

A reconstruction of WSWCBnet (Wang & Abhayaratne, arXiv 2505.23586): WCBnet on signed error
levels, activation maps per block, their fusion, and Bayesian refinement with segmenter
regions. See docs/method.md for what is the paper's and what is ours.
"""

__version__ = "0.1.0"
