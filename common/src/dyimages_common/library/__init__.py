"""The photo library: a folder tree (PHOTOS_DIR) indexed where it lies, its paths and its state."""
