"""Fixtures of the embedding service's tests."""

from __future__ import annotations
