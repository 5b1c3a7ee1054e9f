"""The downloader's Prometheus metrics (names fixed: the Grafana dashboard is built on them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DOWNLOADED = Counter(
    "dyimages_downloader_downloaded_total",
    "URLs fetched and accepted as images (a URL whose bytes were already stored counts too).",
)
PUBLISHED = Counter(
    "dyimages_downloader_published_total",
    "ImageDownloaded messages confirmed by the broker.",
)
FAILED = Counter(
    "dyimages_downloader_failed_total",
    "URLs given up on, by reason (a dyimages_common.reasons.Reason: http_404, not_an_image, too_large, ...).",
    ["reason"],
)
DOWNLOAD_SECONDS = Histogram(
    "dyimages_downloader_download_seconds",
    "Time to fetch one URL: every redirect hop and the whole body.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
URLS = Gauge(
    "dyimages_downloader_urls",
    "URLs from URLS_FILE by state: pending, retrying, done, failed.",
    ["status"],
)
INFLIGHT_BYTES = Gauge(
    "dyimages_downloader_inflight_bytes",
    "Bytes of image bodies reserved now (being read, checked or stored); at most DOWNLOADER_MAX_INFLIGHT_BYTES, "
    "or one image when it alone is larger.",
)
DECODE_BYTES = Gauge(
    "dyimages_downloader_decode_bytes",
    "Decode memory reserved now (estimated from each image's header); at most DOWNLOADER_MAX_DECODE_BYTES, "
    "or one image when it alone needs more.",
)
