"""The HTTP JSON API (``/api/v1``): the app's search, status and images for programs, on FastAPI."""
