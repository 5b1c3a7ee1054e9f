"""``python -m search_app``: serve the search UI with Streamlit on APP_HOST:APP_PORT.

Settings are checked first (one clear line and exit 2 when one is wrong); then the /metrics server
starts (METRICS_PORT), so Prometheus sees the app before any page is opened, and Streamlit's server
runs in this same process (``streamlit run`` in-process: signals reach Streamlit directly, and the
metrics server lives as long as it does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dyimages_common.settings import settings_or_exit
from search_app.metrics_server import start_metrics
from search_app.settings import AppSettings

SCRIPT = Path(__file__).resolve().parent / "ui" / "streamlit_app.py"


def streamlit_command(settings: AppSettings) -> list[str]:
    """``python -m streamlit run ...`` with the settings' flags (serve() runs its arguments in-process)."""
    upload_mb = max(1, settings.max_image_bytes // (1024 * 1024))
    return [
        sys.executable, "-m", "streamlit", "run", str(SCRIPT),
        "--server.address", settings.app_host,
        "--server.port", str(settings.app_port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.maxUploadSize", str(upload_mb),
        # Explicit, so no config file can turn them off: uploads need the XSRF cookie's token
        # (Streamlit requires CORS protection on for XSRF protection).
        "--server.enableXsrfProtection", "true",
        "--server.enableCORS", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        # An error nobody caught shows a generic line, never its message, type or traceback (they go to
        # the log): public users must not read paths, hosts or data. Not "false", which still shows the trace.
        "--client.showErrorDetails", "none",
    ]  # fmt: skip


def serve() -> None:
    """Serve the DY Images search UI (Streamlit) on APP_HOST:APP_PORT (default 0.0.0.0:8501).

    Settings come from environment variables: QDRANT_*, EMBEDDING_SERVICE_URL, RABBITMQ_*,
    IMAGES_DIR, STATE_DB and the APP_* knobs (see .env.example).
    """
    settings = settings_or_exit(AppSettings)
    start_metrics(settings.metrics_port)
    from streamlit.web import cli  # only once the settings are known good

    cli.main(args=streamlit_command(settings)[3:], prog_name="streamlit")  # after `-m streamlit`


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
