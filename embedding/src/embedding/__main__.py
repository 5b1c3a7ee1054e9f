"""``python -m embedding``: serve the embedding API (settings from the environment)."""

from __future__ import annotations

import sys

from dyimages_common.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from embedding.settings import EmbeddingSettings


def main() -> int:
    settings = settings_or_exit(EmbeddingSettings)
    configure_logging("embedding", settings.log_level, settings.log_format)
    # Before anything imports prometheus_client: every process of the service shares one directory.
    from embedding.metrics_dir import use_multiprocess_dir

    cleanup = use_multiprocess_dir()
    try:
        from embedding.model import ModelConfigError, describe_model
        from embedding.server import serve

        try:
            info = describe_model(settings)
        except ModelConfigError as exc:
            sys.stderr.write(f"configuration error: {exc}\n")
            return 2
        return serve(settings, info)
    finally:
        cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
