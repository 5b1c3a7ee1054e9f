"""The directory prometheus_client's multiprocess mode shares between the service's processes.

prometheus_client picks its storage when it is first imported, so the main process must call
:func:`use_multiprocess_dir` before anything imports it; the HTTP and model processes inherit the
variable. This module itself must not import prometheus_client.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir() -> Callable[[], None]:
    """Point prometheus_client at a fresh directory (unless one is set); returns its clean-up."""
    if os.environ.get(ENV):
        return lambda: None
    path = tempfile.mkdtemp(prefix="dyimages-embedding-metrics-")
    os.environ[ENV] = path

    def cleanup() -> None:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(ENV, None)

    return cleanup
