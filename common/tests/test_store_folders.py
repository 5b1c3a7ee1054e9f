"""What an embedded folder (QDRANT_PATH) allows: one process at a time on either engine, and a folder of
qdrant-client's embedded mode refused by Edge in one line that names the ways out, still open with
``QDRANT_EMBEDDED=local``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dyimages_common.store.builds import ensure_serving
from dyimages_common.store.errors import StoreFolderError, StoreInUse
from dyimages_common.store.factory import open_store
from testkit.stores import EMBEDDED, memory_folder, store_settings

pytestmark = pytest.mark.unit

MODEL = {"dim": 4, "model": "m", "pretrained": "none"}


@pytest.mark.parametrize("engine", EMBEDDED)
def test_a_folder_held_by_another_process_is_refused_in_one_line(engine: str) -> None:
    with memory_folder() as folder:
        holder = open_store(store_settings(engine, folder))
        try:
            ensure_serving(holder, **MODEL)
            with pytest.raises(StoreInUse, match="in use by another process") as refused:
                open_store(store_settings(engine, folder))
            assert "\n" not in str(refused.value)
        finally:
            holder.close()
        open_store(store_settings(engine, folder)).close()  # released on close


def test_edge_refuses_a_folder_of_the_embedded_mode_and_local_still_opens_it(tmp_path: Path) -> None:
    folder = tmp_path / "qdrant"
    old = open_store(store_settings("local", folder))
    ensure_serving(old, **MODEL)
    serving = old.serving()
    old.close()
    with pytest.raises(StoreFolderError) as refused:
        open_store(store_settings("edge", folder))
    message = str(refused.value)
    assert "\n" not in message
    assert "QDRANT_EMBEDDED=local" in message
    assert "dyimages reindex" in message
    again = open_store(store_settings("local", folder))
    try:
        assert again.serving() == serving
    finally:
        again.close()
