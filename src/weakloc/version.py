"""The package's version (a leaf module: ``weakloc.__version__`` and run records read it)."""

__version__ = "0.1.0"
