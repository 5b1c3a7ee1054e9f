"""Fixtures of the downloader's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from downloader.settings import DownloaderSettings
from dyimages_common.settings import load_settings

# Quick retries and short timeouts so failure cases finish in a test's time; the loopback address
# the local HTTP server listens on is the only private address let through.
FAST = {
    "downloader_allowed_networks": "127.0.0.1/32",
    "downloader_connect_timeout_s": 2.0,
    "downloader_timeout_s": 1.0,
    "downloader_max_attempts": 3,
    "downloader_retry_initial_s": 0.05,
    "downloader_retry_max_s": 2.0,
    "downloader_max_redirects": 3,
    "downloader_poll_s": 0.1,
    "downloader_broker_retry_max_s": 0.5,
    "downloader_summary_s": 60.0,
    "downloader_shutdown_grace_s": 2.0,
}


@pytest.fixture(scope="session")
def fast_env() -> dict[str, str]:
    """FAST as environment variables, for downloader processes."""
    return {key.upper(): str(value) for key, value in FAST.items()}


def make_settings(tmp: Path, rabbit: dict[str, str], **overrides: object) -> DownloaderSettings:
    """Settings for an in-process downloader in ``tmp`` (URL file ``tmp/urls.txt``)."""
    values: dict[str, object] = {key.lower(): value for key, value in rabbit.items()}
    values |= {"urls_file": tmp / "urls.txt", "images_dir": tmp / "images", **FAST, **overrides}
    return load_settings(DownloaderSettings, **values)


@pytest.fixture(scope="session")
def settings_for() -> Callable[..., DownloaderSettings]:
    return make_settings
