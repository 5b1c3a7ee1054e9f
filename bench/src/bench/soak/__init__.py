"""The soak benchmark (``python -m bench soak``): :mod:`bench.soak.run` drives it; the catalog of good and
bad URLs, the chaos, the checks, the logs and the services it runs are one module each."""
