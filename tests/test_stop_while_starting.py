"""A service stopped while it is still importing exits 0, not by the signal's default action.

The soak caught it: an indexer restarted just before the run ended got SIGTERM while importing and
died of it (exit -15), which a supervisor reads as a crash. To hit that window every time, each child
gets a ``sitecustomize`` whose meta-path finder holds the import of ``aio_pika`` (both services import
it at start) until the test has sent SIGTERM: a stand-in for a slow import, nothing else is changed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

_HOLD_IMPORT = textwrap.dedent(
    """
    import os
    import sys
    import time

    class HoldImport:
        def find_spec(self, name, path=None, target=None):
            if name == "aio_pika":
                with open(os.environ["DY_TEST_MARKER"], "w") as marker:
                    marker.write("importing")
                time.sleep(60)
            return None

    sys.meta_path.insert(0, HoldImport())
    """
)


@pytest.mark.parametrize("module", ["indexer", "downloader"])
def test_sigterm_while_importing_exits_0(module: str, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(_HOLD_IMPORT)
    marker = tmp_path / "marker"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "DY_TEST_MARKER": str(marker),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", module], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the service never reached the import of aio_pika"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
