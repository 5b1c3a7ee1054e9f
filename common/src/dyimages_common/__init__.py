"""Contracts shared by the DY Images services (see docs/architecture.md)."""

from importlib.metadata import version as _distribution_version


def version() -> str:
    """The release this code belongs to: one version for the whole workspace (every member's pyproject.toml
    carries it), read from the installed package so that what runs says what it is."""
    return _distribution_version("dyimages-common")
