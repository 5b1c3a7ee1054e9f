"""The photo library as the downloader's second input: PHOTOS_DIR scanned, checked and indexed in place."""
