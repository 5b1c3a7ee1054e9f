"""The Streamlit app driven by AppTest, against the library indexed by the real indexer.

The expected order of results comes from an oracle computed here: the query's vector from the
embedding service, compared with numpy against every vector in the index. With random model
weights no result is "right" by meaning; the app is right when it shows exactly that order.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import search_app
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.heif import register_heif
from dyimages_common.reasons import Reason
from dyimages_common.store.builds import ensure_serving
from testkit.index_points import open_index
from testkit.indexed_library import COLLECTION, Library, dead_letter
from testkit.procs import free_port

pytestmark = pytest.mark.integration

APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")
QUERY = "a red bicycle leaning on a wall"


@pytest.fixture(autouse=True)
def fresh_process_caches() -> Iterator[None]:
    """Streamlit's caches live in the process: clear them so each test gets its own clients (and the
    Qdrant folder is released when the cached client is closed)."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def text_vector(library: Library, text: str):
    with EmbeddingClient(library.env["EMBEDDING_SERVICE_URL"]) as client:
        return client.embed_texts([text])[0]


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def search_for(at: AppTest, text: str) -> AppTest:
    at.text_input(key="query").input(text).run()
    assert not at.exception, at.exception
    return at


def open_status_page() -> tuple[AppTest, dict[str, str]]:
    at = start()
    at.switch_page("status_page.py").run()
    assert not at.exception, at.exception
    return at, {m.label: m.value for m in at.metric}


def shown_shas(at: AppTest) -> list[str]:
    return [hit.sha256 for hit in at.session_state["hits"]]


def result_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**#")]


def test_text_search_shows_the_index_order_with_scores_and_links(library_environment: Library) -> None:
    library = library_environment
    expected = library.nearest(text_vector(library, QUERY))
    at = search_for(start(), QUERY)
    assert shown_shas(at) == expected[:12]
    lines = result_lines(at)
    assert len(lines) == 12
    assert len(at.image) == 12  # a thumbnail per result
    first = library.by_sha(expected[0])
    assert lines[0].startswith("**#1** · ")
    assert f"](<{first.urls[0]}>)" in lines[0]
    assert not at.error
    assert not at.warning


def test_negative_text_changes_the_order_by_vector_arithmetic(library_environment: Library) -> None:
    library = library_environment
    positive = text_vector(library, "beach")
    without_negative = library.nearest(positive)
    # The test model's weights are random: take the first word whose vector, subtracted, changes the order.
    for word in ("people", "night", "city", "snow", "a red picture", "dogs"):
        expected = library.nearest(positive - 0.5 * text_vector(library, word))  # APP_NEGATIVE_WEIGHT's default
        if expected[:12] != without_negative[:12]:
            break
    else:
        pytest.fail("no negative word changes the order with this model: the test cannot tell")
    at = search_for(start(), f"beach -{word}" if " " not in word else f'beach -"{word}"')
    assert shown_shas(at) == expected[:12]
    assert shown_shas(at) != without_negative[:12]


def test_load_more_extends_the_same_ranking(library_environment: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TOP_K", "4")
    monkeypatch.setenv("APP_PAGE_SIZE", "5")
    expected = library_environment.nearest(text_vector(library_environment, QUERY))
    at = search_for(start(), QUERY)
    assert shown_shas(at) == expected[:4]
    at.button(key="load_more").click().run()
    assert shown_shas(at) == expected[:9]
    assert result_lines(at)[8].startswith("**#9**")
    at.button(key="load_more").click().run()
    assert shown_shas(at) == expected[:12]
    assert "load_more" not in [button.key for button in at.button]  # nothing more to load


def test_filters_on_domain_format_and_size(library_environment: Library) -> None:
    library = library_environment
    at = search_for(start(), QUERY)
    at.multiselect(key="domains").select("art.example.org").run()
    art = {p.sha256 for p in library.pictures if "art.example.org" in p.urls[0]}
    assert set(shown_shas(at)) == art
    at.multiselect(key="domains").unselect("art.example.org").run()
    at.multiselect(key="formats").select("image/png").run()
    assert [library.by_sha(s).content_type for s in shown_shas(at)] == ["image/png"]
    at.multiselect(key="formats").unselect("image/png").run()
    at.number_input(key="min_width").set_value(300).run()
    assert {library.by_sha(s).width for s in shown_shas(at)} == {320}
    assert len(shown_shas(at)) == 2


def test_no_results_state(library_environment: Library) -> None:
    at = search_for(start(), QUERY)
    at.number_input(key="min_width").set_value(5000).run()
    assert any("No results" in info.value for info in at.info)
    assert not at.image


def test_more_like_this_and_details(library_environment: Library) -> None:
    library = library_environment
    at = search_for(start(), QUERY)
    source = at.session_state["hits"][2]
    at.button(key=f"like_{source.sha256}").click().run()
    assert at.session_state["like"] == source.sha256
    assert at.text_input(key="query").value == ""
    shown = shown_shas(at)
    assert source.sha256 not in shown
    assert len(shown) == 11
    st.cache_resource.clear()  # release the folder to compute the oracle
    assert shown == [s for s in library.nearest(library.vectors()[source.sha256]) if s != source.sha256]


def test_details_show_every_url_size_and_format(library_environment: Library) -> None:
    library = library_environment
    two_urls = next(p for p in library.pictures if len(p.urls) == 2)
    at = search_for(start(), QUERY)
    at.button(key=f"details_{two_urls.sha256}").click().run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    for url in two_urls.urls:
        assert f"](<{url}>)" in text
    assert f"**{two_urls.width} × {two_urls.height}** · JPEG" in text


def test_search_by_uploaded_image_finds_that_image_first(library_environment: Library) -> None:
    library = library_environment
    picture = library.pictures[5]
    at = start()
    uploader = next(u for u in at.file_uploader if u.key.startswith("query_image"))
    uploader.set_value(("query.jpg", picture.data, "image/jpeg")).run()
    assert not at.exception, at.exception
    hits = at.session_state["hits"]
    assert hits[0].sha256 == picture.sha256
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_an_uploaded_heic_phone_photo_is_a_query(library_environment: Library) -> None:
    """The uploader offers HEIC and AVIF, and a HEIC of an indexed picture finds that picture first."""
    picture = library_environment.pictures[5]
    register_heif()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(picture.data)).save(buffer, "HEIF", quality=90)
    at = start()
    uploader = next(u for u in at.file_uploader if u.key.startswith("query_image"))
    assert {".heic", ".heif", ".avif", ".jpg", ".jpeg", ".png", ".webp", ".gif"} <= set(uploader.proto.type)
    uploader.set_value(("IMG_0001.HEIC", buffer.getvalue(), "image/heic")).run()
    assert not at.exception, at.exception
    assert at.session_state["hits"][0].sha256 == picture.sha256


def test_empty_index_says_how_to_add_images(own_library: Library) -> None:
    at = start()
    assert any("The index is empty" in info.value and "image_urls.txt" in info.value for info in at.info)
    at = search_for(at, QUERY)
    assert any("The index is empty" in info.value for info in at.info)
    assert not at.error


def test_embedding_service_down_is_a_plain_message(
    library_environment: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    at = search_for(start(), QUERY)
    assert "embedding service" in at.error[0].value
    assert "is not answering" in at.error[0].value
    assert not at.exception


def test_qdrant_folder_in_use_is_a_plain_message(library_environment: Library) -> None:
    holder = open_index(library_environment.qdrant_path)
    try:
        at = start()
        assert "in use by another process" in at.error[0].value
        assert not at.exception
    finally:
        holder.close()


@pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")
def test_qdrant_server_down_is_a_plain_message(library_environment: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_PATH")
    monkeypatch.setenv("QDRANT_HOST", "127.0.0.1")
    monkeypatch.setenv("QDRANT_PORT", str(free_port()))
    at = search_for(start(), QUERY)
    assert "Qdrant" in at.error[0].value
    assert not at.exception


def test_bad_setting_names_the_variable(library_environment: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TOP_K", "many")
    at = start()
    assert "APP_TOP_K='many'" in at.error[0].value


def test_status_page_shows_index_model_queue_and_failures(library_environment: Library) -> None:
    at, metrics = open_status_page()
    assert metrics["Images indexed"] == "12"
    assert metrics["Waiting in queue"] == "0"
    assert metrics["URLs failed"] == "1"
    text = "\n".join(m.value for m in at.markdown)
    assert "**dy-tiny** (none) · dim 512 · device **cpu**" in text
    assert any("model dy-tiny (none), dim 512" in c.value for c in at.caption)
    assert not at.warning  # the index was built by the model the service runs
    failures = at.dataframe[0].value  # download failures (no dead letters in this library)
    assert len(at.dataframe) == 1
    assert list(failures["url"]) == ["https://photos.example/gone.jpg"]
    assert "404" in failures["reason"][0]
    assert list(failures["explanation"]) == [Reason.HTTP_404.explanation]


def test_status_page_with_rabbitmq_down_still_shows_the_index(
    library_environment: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITMQ_PORT", str(free_port()))
    at, metrics = open_status_page()
    assert metrics["Images indexed"] == "12"
    assert metrics["Waiting in queue"] == "-"
    assert any("RabbitMQ" in e.value and "is not answering" in e.value for e in at.error)


def test_status_page_lists_dead_lettered_messages_with_reasons(own_library: Library) -> None:
    dead_letter(own_library, b'{"sha256": "' + b"cd" * 32 + b'", "url": "https://x.example/c.jpg"}', "embed_refused")
    at, metrics = open_status_page()
    assert metrics["Images indexed"] == "0"
    assert metrics["Dead-lettered"] == "1"
    letters = at.dataframe[0].value
    assert list(letters["reason"]) == ["embed_refused"]
    assert list(letters["explanation"]) == [Reason.EMBED_REFUSED.explanation]
    assert list(letters["url"]) == ["https://x.example/c.jpg"]


def test_a_query_of_only_negative_terms_asks_for_something_to_find(library_environment: Library) -> None:
    at = search_for(start(), "-people")
    assert "nothing to search for" in at.warning[0].value
    at = search_for(at, "beach -people")
    assert any("without people" in c.value for c in at.caption)


def test_status_page_warns_when_the_index_was_built_by_another_model(own_library: Library) -> None:
    index = open_index(own_library.qdrant_path, COLLECTION)
    try:
        ensure_serving(index, dim=512, model="ViT-L-14", pretrained="openai")
    finally:
        index.close()
    at, _ = open_status_page()
    assert "built with ViT-L-14 (openai), the service runs dy-tiny (none)" in at.warning[0].value
    assert "dyimages reindex" in at.warning[0].value


def test_search_in_an_index_of_another_vector_size_says_to_reindex(own_library: Library) -> None:
    index = open_index(own_library.qdrant_path, COLLECTION)
    try:
        ensure_serving(index, dim=768, model="ViT-L-14", pretrained=None)
    finally:
        index.close()
    at = search_for(start(), QUERY)
    assert "768-dimensional vectors of ViT-L-14" in at.error[0].value
    assert "dyimages reindex" in at.error[0].value


def test_search_in_an_index_of_other_weights_of_the_same_size_says_to_reindex(own_library: Library) -> None:
    # Same model name and vector size as the service (dy-tiny, 512), other weights: only the check of
    # the query vector's model against the index's catches it.
    index = open_index(own_library.qdrant_path, COLLECTION)
    try:
        ensure_serving(index, dim=512, model="dy-tiny", pretrained="other-weights")
    finally:
        index.close()
    at = search_for(start(), QUERY)
    assert at.error, "a query vector of other weights was searched without a word"
    assert "other-weights" in at.error[0].value
    assert "dyimages reindex" in at.error[0].value
