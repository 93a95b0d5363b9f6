"""The ``cxclean`` command line: a thin Click layer over the Python API."""
from cleaner.cli.main import main

__all__ = ["main"]
