"""Fixtures of the indexer's tests.

pytest's importlib mode names these modules ``indexer.tests.*`` and registers the folder
``indexer/`` as a namespace package called ``indexer``, which hides the real package
(``indexer/src/indexer``). Put the real one back before any test imports it.
"""

from __future__ import annotations

import importlib
import sys

if getattr(sys.modules.get("indexer"), "__file__", None) is None:
    sys.modules.pop("indexer", None)
    importlib.import_module("indexer")
