"""The semantic tests of ``tests/semantic``, unchanged, through the embedding service on Ray Serve.

The functions are the same objects as there; only ``demo_embedding`` differs (``tests/ray/conftest.py``):
the demo library is embedded by the Ray deployment, and every query vector comes from it too.
"""

from __future__ import annotations

from tests.semantic.test_search_semantics import (
    test_a_filter_keeps_the_best_match_when_it_qualifies_and_drops_it_when_not,
    test_a_negative_term_pushes_its_images_down,
    test_a_text_query_finds_the_right_images_first,
    test_dyimages_search_json_gives_the_same_answers,
    test_paging_never_repeats_or_skips_a_result,
    test_similar_finds_the_altered_copies,
    test_text_and_image_combined_find_what_matches_both,
)

__all__ = [
    "test_a_filter_keeps_the_best_match_when_it_qualifies_and_drops_it_when_not",
    "test_a_negative_term_pushes_its_images_down",
    "test_a_text_query_finds_the_right_images_first",
    "test_dyimages_search_json_gives_the_same_answers",
    "test_paging_never_repeats_or_skips_a_result",
    "test_similar_finds_the_altered_copies",
    "test_text_and_image_combined_find_what_matches_both",
]
