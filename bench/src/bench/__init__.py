"""Benchmarks: `python -m bench NAME [--quick] [options]`, figures as one JSON object on the last line."""
