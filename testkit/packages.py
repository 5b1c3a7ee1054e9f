"""Undoing pytest's shadowing of a service package by its own folder.

pytest's importlib mode names ``embedding/tests/test_x.py`` ``embedding.tests.test_x`` and registers
the folder ``embedding/`` as a namespace package called ``embedding``, which hides the real package
(``embedding/src/embedding``). The root ``conftest.py`` calls :func:`unshadow` for every service
package before any test imports one.
"""

from __future__ import annotations

import importlib
import sys


def unshadow(package: str) -> None:
    """Replace a namespace-package stand-in for ``package`` in sys.modules by the real package."""
    if getattr(sys.modules.get(package), "__file__", None) is None:
        sys.modules.pop(package, None)
        importlib.import_module(package)
