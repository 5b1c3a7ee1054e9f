"""Image files: checking untrusted bytes, bounding decode work, EXIF facts, the content-addressed store."""
