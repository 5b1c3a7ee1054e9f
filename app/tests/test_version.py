"""The release a person runs is on show: ``dyimages --version`` prints it and the status page says it, both
read from the installed packages (one version for the whole workspace, tests/test_release.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dyimages_common import version
from testkit.app_driver import running_app
from testkit.procs import free_port

pytestmark = pytest.mark.integration


def test_dyimages_version_prints_the_release_and_nothing_else() -> None:
    dyimages = Path(sys.executable).with_name("dyimages")  # the console script the image installs
    result = subprocess.run([str(dyimages), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"dyimages {version()}\n"
    assert version().count(".") == 2


def test_the_status_page_shows_the_release(
    rabbit_environment: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.setenv("STATE_DB", str(tmp_path / "state.sqlite3"))
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", f"http://127.0.0.1:{free_port()}")  # down: the page says so
    with running_app() as at:
        at.switch_page("status_page.py").run()
        assert not at.exception, at.exception
        assert f"DY Images {version()}" in [caption.value for caption in at.caption]
