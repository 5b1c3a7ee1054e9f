"""Every engine the store seam runs on, opened the same way, for the contract suite and the tests that
must hold on each: ``edge`` (Qdrant Edge in a folder, the embedded default), ``local`` (qdrant-client's
embedded mode in a folder) and ``server`` (the server adapter over HTTP to :class:`QdrantRestStandIn`,
a stand-in named as such, since no Qdrant server can run here)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.engine import Engine
from dyimages_common.store.factory import open_engine, open_store
from dyimages_common.store.points import REVISION_FIELD
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import PointFilter, Row
from testkit.qdrant_rest import QdrantRestStandIn

ENGINES = ("edge", "local", "server")
EMBEDDED = ("edge", "local")


@contextmanager
def memory_folder() -> Iterator[Path]:
    """A fresh folder in /dev/shm (a RAM file system) where there is one, else in the temporary folder.

    Edge fsyncs each collection and payload index it creates; on this machine's disk that is a second per
    collection, which the contract cases (about behaviour, not durability) need not pay again and again.
    """
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="dyimages-store-", dir=shm if shm.is_dir() else None))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def store_settings(engine: str, folder: Path, name: str = "images") -> QdrantSettings:
    """Settings for an embedded engine in ``folder``."""
    return load_settings(QdrantSettings, qdrant_path=folder, qdrant_embedded=engine, qdrant_collection=name)


@contextmanager
def opened_store(engine: str, folder: Path, name: str = "images") -> Iterator[ImageStore]:
    """An open store of ``engine``: in ``folder`` when embedded, against a fresh stand-in for ``server``."""
    if engine == "server":
        with QdrantRestStandIn() as endpoint:
            settings = load_settings(
                QdrantSettings,
                qdrant_host="127.0.0.1",
                qdrant_port=endpoint.port,
                qdrant_path=None,
                qdrant_collection=name,
            )
            store = open_store(settings)
            try:
                yield store
            finally:
                store.close()
        return
    store = open_store(store_settings(engine, folder, name))
    try:
        yield store
    finally:
        store.close()


class RawPoints:
    """Another tool writing the serving collection's points past the point model (payload dicts as they
    are): what tests use to tamper with an index, on whatever engine the folder holds."""

    def __init__(self, engine: Engine, collection: str) -> None:
        self.engine, self.collection = engine, collection

    def retrieve(self, pid: str) -> Row | None:
        rows = self.engine.retrieve(self.collection, [pid], vectors=True)
        return rows[0] if rows else None

    def every_point(self) -> list[Row]:
        """Every point with its payload and vector ([] when there is no collection)."""
        if not self.engine.exists(self.collection):
            return []
        rows, _ = self.engine.scroll(self.collection, PointFilter(), limit=100_000, offset=None)
        return self.engine.retrieve(self.collection, [row.id for row in rows], vectors=True)

    def delete(self, pid: str) -> None:
        self.engine.delete(self.collection, [pid])

    def set_payload(self, pid: str, changes: dict[str, Any]) -> None:
        row = self.retrieve(pid)
        assert row is not None, f"no point {pid}"
        changed = Row(id=pid, payload={**row.payload, **changes}, vector=row.vector)
        self.engine.update_if(self.collection, [changed], row.payload.get(REVISION_FIELD))

    def insert(self, pid: str, vector: np.ndarray, payload: dict[str, Any]) -> None:
        self.engine.insert_new(self.collection, [Row(id=pid, payload=payload, vector=np.asarray(vector))])


@contextmanager
def raw_points(folder: Path, name: str = "images") -> Iterator[RawPoints]:
    """The embedded store in ``folder`` (the default engine), open in this process until the block ends."""
    settings = load_settings(QdrantSettings, qdrant_path=folder, qdrant_collection=name)
    engine = open_engine(settings)
    try:
        collection = engine.names().get(name, name)
        yield RawPoints(engine, collection)
    finally:
        engine.close()
