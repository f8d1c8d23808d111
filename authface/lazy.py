"""Lazy package attributes: ``name -> module`` tables that import a module only when one of its names is used.

Keeps ``import authface`` (and ``authface.data``, ``authface.eval``) free of torch, diffusers and OpenCV imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that resolves ``table[name]`` on first use."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            # cache it on the package; this also wins over a submodule of the same name (authface.eval.evaluate)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
