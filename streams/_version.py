"""The distribution's version, in one place (read by setuptools and `rxkube version`)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
