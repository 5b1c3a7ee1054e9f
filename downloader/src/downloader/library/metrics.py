"""The library scanner's Prometheus metrics (beside the downloader's, on its METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FILES = Gauge(
    "dyimages_downloader_library_files",
    "Files of the photo library by state: done (indexed or on its way), failed (refused, with a reason), "
    "settling (new or changed, waiting until the copy ends).",
    ["status"],
)
SCAN_SECONDS = Histogram(
    "dyimages_downloader_library_scan_seconds",
    "Time of one look at the whole photo folder: stat every photo and compare with the state (no file read).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CPU_SECONDS = Counter(
    "dyimages_downloader_library_cpu_seconds_total",
    "CPU time the scanner spent, by stage: scan (stat the folder), read_hash (read and SHA-256 the bytes), "
    "check (the image checks: format, limits, a decode of every byte).",
    ["stage"],
)
