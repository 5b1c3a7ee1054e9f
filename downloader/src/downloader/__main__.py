"""``python -m downloader [--once]``: fetch the URLs in URLS_FILE, store images, publish messages."""

from __future__ import annotations

from dyimages_common.process.early_stop import exit_cleanly_until_started

# First, before the imports below, which take seconds: a stop asked for meanwhile exits 0.
exit_cleanly_until_started()

import asyncio  # noqa: E402
import logging  # noqa: E402

import typer  # noqa: E402

from downloader.library.service import LibraryDownloader  # noqa: E402
from downloader.service import UrlFileMissing  # noqa: E402
from downloader.settings import DownloaderSettings  # noqa: E402
from dyimages_common.process.logs import configure_logging  # noqa: E402
from dyimages_common.process.metrics import serve_metrics  # noqa: E402
from dyimages_common.settings import settings_or_exit  # noqa: E402

log = logging.getLogger("downloader")

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


async def _run(settings: DownloaderSettings, once: bool) -> int:
    downloader = LibraryDownloader(settings)
    downloader.supervisor.install_signal_handlers("finishing in-flight work, then stopping")
    try:
        await downloader.run(once=once)
    except UrlFileMissing as exc:
        log.error("%s", exc)
        return 1
    if once and downloader.internal_errors:
        log.error("%d download(s) failed inside the downloader (see above)", downloader.internal_errors)
        return 1
    return 0


@app.command()
def main(
    once: bool = typer.Option(
        False, "--once", help="Handle every URL in the file (retries included), publish, then exit instead of watching."
    ),
) -> None:
    """Download the images listed in URLS_FILE (one URL per line), store each once under IMAGES_DIR,
    and publish one message per stored image and source URL to RABBITMQ_QUEUE. Without --once, keep watching the file
    and pick up new lines. With PHOTOS_DIR, also index every photo in that folder where it lies (read, never
    copied) and follow its changes (--once: until every photo there is recorded). Configured by environment
    variables (DOWNLOADER_*, RABBITMQ_*, IMAGES_DIR, PHOTOS_DIR, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, STATE_DB,
    METRICS_PORT, LOG_LEVEL, LOG_FORMAT)."""
    settings = settings_or_exit(DownloaderSettings)
    configure_logging("downloader", settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    log.info(
        "downloader starting: %s, images in %s, state in %s%s",
        settings.urls_file,
        settings.images_dir,
        settings.state_db_path,
        " (once)" if once else " (watching)",
    )
    raise typer.Exit(asyncio.run(_run(settings, once)))


if __name__ == "__main__":
    app()
