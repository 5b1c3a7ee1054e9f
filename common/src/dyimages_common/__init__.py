"""Contracts shared by the DY Images services (see docs/architecture.md)."""
