"""Shared pytest setup: make the package importable from a source checkout.

When nmmfit is installed (``pip install --no-build-isolation .``) the installed package, with its
compiled extension, is used; only when it is not importable at all is ``python/`` put on the path,
so the pure-PyTorch parts can be tested before the extension is built.
"""
import importlib.util
import os
import sys

if importlib.util.find_spec("nmmfit") is None:  # pragma: no cover - depends on the environment
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
