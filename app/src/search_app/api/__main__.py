"""``python -m search_app.api``: serve the HTTP API with uvicorn on API_HOST:API_PORT.

Settings are checked first (one clear line and exit 2 when one is wrong), as the UI's entry point does;
then, with METRICS_PORT set, the /metrics server (the query cache's counter) starts, as the UI's does.
"""

from __future__ import annotations

import uvicorn

from dyimages_common.process.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from search_app.api.app import create_app
from search_app.api.settings import ApiSettings
from search_app.metrics_server import start_metrics


def main() -> None:
    settings = settings_or_exit(ApiSettings)
    configure_logging("api", settings.log_level, settings.log_format)
    start_metrics(settings.metrics_port)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # the process's logging, as configured above
        proxy_headers=False,  # the proxy's X-Forwarded-* are not trusted by default
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
