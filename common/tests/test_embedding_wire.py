"""The embedding API's per-item errors are typed on the wire: a Reason and a detail, never a parsed string."""

from __future__ import annotations

import json

import pydantic
import pytest

from dyimages_common.embeddings.answers import EmbeddingRequestError, single_vector
from dyimages_common.embeddings.wire import EmbedResponse, ItemFailure
from dyimages_common.reasons import Reason

pytestmark = pytest.mark.unit


def _answer(errors: list[object]) -> bytes:
    vectors = [None if error else [1.0, 0.0] for error in errors]
    return json.dumps({"model": "m", "pretrained": "p", "dim": 2, "vectors": vectors, "errors": errors}).encode()


def test_an_item_error_reads_as_its_reason_member_and_detail() -> None:
    parsed = EmbedResponse.model_validate_json(_answer([None, {"reason": "not_found", "detail": "no stored image"}]))
    assert parsed.errors[0] is None
    failure = parsed.errors[1]
    assert failure == ItemFailure(reason=Reason.NOT_FOUND, detail="no stored image")
    assert failure.reason is Reason.NOT_FOUND
    assert str(failure) == "not_found: no stored image"


def test_a_reason_this_version_does_not_know_reads_as_unknown() -> None:
    """A newer service may send a word this client does not know: the answer still reads."""
    parsed = EmbedResponse.model_validate_json(_answer([{"reason": "cosmic_ray", "detail": "bit flip"}]))
    assert parsed.errors[0] == ItemFailure(reason=Reason.UNKNOWN, detail="bit flip")


def test_the_old_string_form_is_refused() -> None:
    """Negative control: a ``"word: detail"`` string is not an item error any more."""
    with pytest.raises(pydantic.ValidationError):
        EmbedResponse.model_validate_json(_answer(["not_found: no stored image"]))


def test_a_failed_single_item_raises_with_its_failure() -> None:
    parsed = EmbedResponse.model_validate_json(_answer([{"reason": "too_large", "detail": "9 bytes"}]))
    with pytest.raises(EmbeddingRequestError) as refused:
        single_vector(parsed)
    assert refused.value.failure == ItemFailure(reason=Reason.TOO_LARGE, detail="9 bytes")
    assert str(refused.value) == "too_large: 9 bytes"


def test_the_service_writes_what_the_client_reads() -> None:
    failure = ItemFailure(reason=Reason.CORRUPT_IMAGE, detail="truncated")
    assert failure.model_dump(mode="json") == {"reason": "corrupt_image", "detail": "truncated"}
    assert ItemFailure.model_validate(failure.model_dump(mode="json")) == failure
