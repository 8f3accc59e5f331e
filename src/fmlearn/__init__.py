"""fmlearn: factorization machines for Python."""

from fmlearn._version import __version__

__all__ = ["__version__"]
