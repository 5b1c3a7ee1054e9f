"""``python -m embedding.weights``: download MODEL_NAME's MODEL_PRETRAINED weights into MODEL_CACHE_DIR.

The Dockerfile runs it at build time with ``BAKE_MODEL=true`` so the image needs no network at
run time; otherwise the service downloads the weights on first start into the same cache (a
compose volume), once.
"""

from __future__ import annotations

import logging
import sys

import open_clip

from dyimages_common.process.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from embedding.model import ModelConfigError, describe_model
from embedding.settings import EmbeddingSettings

log = logging.getLogger(__name__)


def download(settings: EmbeddingSettings) -> str | None:
    """The local checkpoint file for the settings' weights (downloaded if absent); None for random weights."""
    describe_model(settings)
    pretrained = settings.pretrained
    if pretrained is None:
        return None
    config = open_clip.get_pretrained_cfg(settings.model_name, pretrained)
    if not config:  # a local checkpoint file: nothing to download
        return pretrained
    settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
    return str(open_clip.download_pretrained(config, cache_dir=str(settings.model_cache_dir)))


def main() -> int:
    settings = settings_or_exit(EmbeddingSettings)
    configure_logging("embedding", settings.log_level, settings.log_format)
    try:
        path = download(settings)
    except ModelConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    log.info("weights for %s (%s): %s", settings.model_name, settings.model_pretrained, path or "random, none needed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
