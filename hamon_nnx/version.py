"""The package version (one place; the package, checkpoints and run records read it)."""

__version__ = "0.1.0"
