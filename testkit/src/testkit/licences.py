"""The licences of what the images ship, from the installed distributions' metadata and uv.lock.

``python -m testkit.licences`` prints the table of docs/licences.md: every runtime package and every
library bundled in a runtime wheel whose licence asks more of a redistributor than a notice does
(copyleft, proprietary), with the images that carry it. tests/test_licences.py fails when that table
is stale or a licence cannot be read.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testkit import REPO_ROOT, lock

PERMISSIVE = frozenset(
    {"MIT", "MIT-0", "MIT-CMU", "BSD", "0BSD", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "ISC", "PSF-2.0"}
    | {"Zlib", "CC0-1.0", "BSL-1.0", "CNRI-Python", "IJG", "libpng-2.0", "libtiff", "FTL", "Public-Domain"}
)
# Declarations that are not SPDX identifiers, as packages write them.
ALIASES = {
    "Apache 2.0": "Apache-2.0",
    "Apache License, Version 2.0": "Apache-2.0",
    "Apache License 2.0": "Apache-2.0",
    "MIT License": "MIT",
    "3-Clause BSD License": "BSD-3-Clause",
    "ISC License": "ISC",
    "GPLv2": "GPL-2.0-only",
    "NVIDIA Proprietary Software": "LicenseRef-NVIDIA-Proprietary",
}
CLASSIFIERS = {
    "MIT License": "MIT",
    "BSD License": "BSD",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
}
# Packages whose metadata declares nothing usable, with what their own terms say.
DECLARED_ELSEWHERE = {"cuda-toolkit": "LicenseRef-NVIDIA-Proprietary"}  # a meta-package under NVIDIA's CUDA EULA
# Shared libraries wheels bundle (auditwheel's <package>.libs/), by name without hash and version.
BUNDLED = {
    "libavif": "BSD-2-Clause",
    "libbrotlicommon": "MIT",
    "libbrotlidec": "MIT",
    "libcudart": "LicenseRef-NVIDIA-Proprietary",
    "libde265": "LGPL-3.0-or-later",
    "libfreetype": "FTL",
    "libgfortran": "GPL-3.0-or-later WITH GCC-exception-3.1",
    "libharfbuzz": "MIT",
    "libheif": "LGPL-3.0-or-later",
    "libjpeg": "IJG",
    "liblcms2": "MIT",
    "liblzma": "0BSD",
    "libnvjpeg": "LicenseRef-NVIDIA-Proprietary",
    "libopenjp2": "BSD-2-Clause",
    "libpng16": "libpng-2.0",
    "libquadmath": "LGPL-2.1-or-later",
    "libscipy_openblas": "BSD-3-Clause",
    "libscipy_openblas64_": "BSD-3-Clause",
    "libsharpyuv": "BSD-3-Clause",
    "libsodium": "ISC",
    "libtiff": "libtiff",
    "libwebp": "BSD-3-Clause",
    "libwebpdemux": "BSD-3-Clause",
    "libwebpmux": "BSD-3-Clause",
    "libx265": "GPL-2.0-or-later",
    "libXau": "MIT",
    "libxcb": "MIT",
    "libz": "Zlib",
    "libzmq": "MPL-2.0",
    "libzstd": "BSD-3-Clause",
}


@dataclass(frozen=True)
class Constraint:
    """One package or bundled library whose licence is not permissive, and the images that ship it."""

    name: str
    version: str
    licence: str
    images: tuple[str, ...]


def _image(service: dict[str, Any], args: dict[str, str]) -> tuple[str, tuple[str, tuple[str, ...]]]:
    """A built service's image by tag name, with its workspace package and extras."""
    tag = service["image"].split(":")[0].removeprefix("dyimages-")
    return tag, (f"dyimages-{args['MEMBER']}", tuple(args.get("EXTRAS", "").split()))


def images() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each image compose builds (the GPU override's too), by tag name, with its workspace package and extras;
    an extra no image installs is listed as ``package[extra]``."""
    base = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    gpu = yaml.safe_load((REPO_ROOT / "docker-compose.gpu.yml").read_text())["services"]
    built = dict(_image(service, service["build"]["args"]) for service in base.values() if "build" in service)
    for name, override in gpu.items():
        if "build" in override:
            built.update([_image(override, {**base[name]["build"]["args"], **override["build"].get("args", {})})])
    locked = lock.locked()
    for package in sorted({package for package, _ in built.values()}):
        in_images = {extra for other, extras in built.values() if other == package for extra in extras}
        for extra in sorted(set(locked[package].get("optional-dependencies", {})) - in_images):
            built[f"{package.removeprefix('dyimages-')}[{extra}]"] = (package, (extra,))
    return built


@functools.cache
def declared(name: str) -> str:
    """A distribution's licence as an SPDX-like expression: License-Expression, then License, then classifiers."""
    if name in DECLARED_ELSEWHERE:
        return DECLARED_ELSEWHERE[name]
    metadata = importlib.metadata.metadata(name)
    if metadata.get("License-Expression"):
        return metadata["License-Expression"]
    licence = (metadata.get("License") or "").strip()
    if licence in ALIASES or re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", licence):
        return ALIASES.get(licence, licence)
    classified = [c.split("::")[-1].strip() for c in metadata.get_all("Classifier") or [] if c.startswith("License")]
    known = sorted({CLASSIFIERS[c] for c in classified if c in CLASSIFIERS})
    return " OR ".join(known) if known else f"UNKNOWN: {licence[:40] or 'nothing declared'}"


def permissive(expression: str) -> bool:
    """Whether an expression can be met with permissive terms only: some OR branch whose every AND term is."""
    assert "(" not in expression, f"parenthesised licence expressions are not read yet: {expression}"
    return any(
        all(term.split(" WITH ")[0].strip() in PERMISSIVE for term in branch.split(" AND "))
        for branch in expression.split(" OR ")
    )


@functools.cache
def _bundled(distribution: str) -> dict[str, str]:
    """The shared libraries a distribution's wheel bundles, by name without hash and version."""
    files = importlib.metadata.distribution(distribution).files or []
    names = {
        re.sub(r"([-.][0-9a-f]{8})*\.so.*$", "", Path(str(f)).name)
        for f in files
        if ".libs/" in str(f) and ".so" in Path(str(f)).name
    }
    return {name: BUNDLED.get(name, "UNKNOWN: a bundled library") for name in names}


def constraints() -> list[Constraint]:
    """Every runtime package and bundled library that is not permissive, with the images that carry it."""
    carriers: dict[tuple[str, str, str], set[str]] = {}
    for image, (package, extras) in images().items():
        for distribution in lock.closure(package, extras) - {package, "dyimages-common"}:
            version = importlib.metadata.version(distribution)
            items = {distribution: declared(distribution)} | _bundled(distribution)
            for name, licence in items.items():
                if not permissive(licence):
                    key = (name, version if name == distribution else f"in {distribution} {version}", licence)
                    carriers.setdefault(key, set()).add(image)
    return [Constraint(*key, tuple(sorted(found))) for key, found in sorted(carriers.items())]


def table() -> str:
    """The Markdown table of docs/licences.md."""
    rows = ["| Package or library | Version | Licence | Images |", "| --- | --- | --- | --- |"]
    rows += [f"| `{c.name}` | {c.version} | {c.licence} | {', '.join(c.images)} |" for c in constraints()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
