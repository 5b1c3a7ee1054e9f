"""The on-disk layout of an embedded Edge store, and the two guarantees it makes: one process at a time,
and names moved atomically.

``QDRANT_PATH/`` holds ``.dyimages.lock`` (an exclusive ``flock`` held while a process has the store open),
``names.json`` (name -> collection: the pointer a reindex's swap replaces with one atomic rename), and
``collections/<collection>/`` with ``model.json`` (what made its vectors) and ``shard/`` (one Edge shard:
segments, HNSW, payload indexes and its write-ahead log). Edge itself allows one writer process per shard;
the lock extends that to the whole folder, names included, and says so in one line.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from dyimages_common.store.errors import StoreFolderError, StoreInUse

LOCK_FILE = ".dyimages.lock"
NAMES_FILE = "names.json"
COLLECTIONS = "collections"
MODEL_FILE = "model.json"
SHARD = "shard"
# qdrant-client's embedded mode writes these into its folder: an index made before Edge.
_LOCAL_MODE_MARKS = ("meta.json", "collection")


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON in one rename: a reader (or a crash) sees the old file or the
    new one, never half of one. The data and the folder entry are fsynced."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class EdgeFolder:
    """QDRANT_PATH, locked for this process until :meth:`release`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._refuse_local_mode()
        self._lock = open(root / LOCK_FILE, "a+")  # noqa: SIM115  # held open for the store's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreInUse(
                f"the embedded Qdrant folder {root} is in use by another process (the app, the indexer or "
                "another dyimages command); the embedded store allows one process at a time, so stop it or use "
                "the Qdrant server"
            ) from None
        (root / COLLECTIONS).mkdir(exist_ok=True)

    def _refuse_local_mode(self) -> None:
        if (self.root / NAMES_FILE).exists():
            return
        if all((self.root / mark).exists() for mark in _LOCAL_MODE_MARKS):
            raise StoreFolderError(
                f"QDRANT_PATH={self.root} holds an index of qdrant-client's embedded mode, which Qdrant Edge does "
                "not open: set QDRANT_EMBEDDED=local to keep using it, or point QDRANT_PATH at a new folder and "
                "run `dyimages reindex` (it rebuilds the index from the stored images)"
            )

    def release(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    # -- names ------------------------------------------------------------------------------------------

    def names(self) -> dict[str, str]:
        path = self.root / NAMES_FILE
        if not path.exists():
            return {}
        return {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}

    def write_names(self, names: dict[str, str]) -> None:
        write_atomically(self.root / NAMES_FILE, names)

    # -- collections ------------------------------------------------------------------------------------

    def collection(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a collection name: {name!r}")
        return self.root / COLLECTIONS / name

    def shard(self, name: str) -> Path:
        return self.collection(name) / SHARD

    def exists(self, name: str) -> bool:
        folder = self.collection(name)
        return (folder / MODEL_FILE).is_file() and (folder / SHARD).is_dir()

    def record(self, name: str) -> dict[str, Any] | None:
        path = self.collection(name) / MODEL_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() and self.exists(name) else None

    def write_record(self, name: str, record: dict[str, Any]) -> None:
        folder = self.collection(name)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / MODEL_FILE, record)

    def remove(self, name: str) -> bool:
        """Delete a collection's folder: first renamed out of the way (atomic), then removed."""
        folder = self.collection(name)
        if not folder.exists():
            return False
        trash = self.root / COLLECTIONS / f".deleted-{name}-{uuid.uuid4().hex}"
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def leftovers(self) -> list[Path]:
        """Folders a crash left half-deleted."""
        return [p for p in (self.root / COLLECTIONS).iterdir() if p.name.startswith(".deleted-")]
