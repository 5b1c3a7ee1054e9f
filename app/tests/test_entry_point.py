"""``python -m search_app``: settings are checked before Streamlit starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from search_app.__main__ import streamlit_command
from search_app.settings import AppSettings

pytestmark = pytest.mark.unit


def test_a_bad_setting_stops_with_one_line_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "search_app"],
        env={**os.environ, "APP_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: APP_PORT='eighty': Input should be a valid integer, unable to parse string as an integer"
    ]


def test_streamlit_listens_where_the_settings_say() -> None:
    command = streamlit_command(AppSettings(app_host="127.0.0.1", app_port=9123, max_image_bytes=20 * 1024 * 1024))
    joined = " ".join(command)
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert command[4].endswith("search_app/ui/streamlit_app.py")
    assert "--server.address 127.0.0.1 --server.port 9123" in joined
    assert "--server.maxUploadSize 20" in joined
    assert "--browser.gatherUsageStats false" in joined
