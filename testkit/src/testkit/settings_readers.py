"""Which setting each compose service reads, found in the code rather than listed by hand, and what
`.env.example` documents.

A service built from a workspace member (``build.args.MEMBER``) reads the variables of its member's
pydantic-settings class and the names its code reads from ``os.environ`` directly; the proxy reads
the ``PROXY_*`` variables (and ``MAX_IMAGE_BYTES``) its entrypoint gives a default. A new settings
class, field or ``os.environ`` read is found without editing this file.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from testkit import REPO_ROOT
from testkit.compose import variable_names

ENV_EXAMPLE = REPO_ROOT / ".env.example"
PROXY_ENTRYPOINT = REPO_ROOT / "deploy" / "proxy" / "entrypoint.sh"
# The one settings class each member's service loads. A member with another BaseSettings class
# (a second process) must say here which compose service runs it.
SETTINGS_CLASSES = {
    "downloader": "downloader.settings:DownloaderSettings",
    "indexer": "indexer.settings:IndexerSettings",
    "embedding": "embedding.settings:EmbeddingSettings",
    "app": "search_app.settings:AppSettings",
}
# Settings classes that a compose override file runs in place of the member's own, for one service:
# ``module:Class`` -> (override file, service). Their variables are held to the same rules there.
OVERRIDE_SETTINGS = {
    "embedding.ray_serve.settings:RaySettings": ("docker-compose.ray.yml", "embedding"),
}
# Settings classes that another entry point of a member's image loads, in a compose service of its own
# (docker-compose.yml runs the image with that entry point's command): ``module:Class`` -> service.
SERVICE_SETTINGS = {
    "search_app.api.settings:ApiSettings": "api",
}
_ENVIRON_READ = re.compile(r"""os\.(?:environ\.get|environ\.setdefault|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']|"""
                           r"""os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]""")  # fmt: skip
_ENTRYPOINT_DEFAULT = re.compile(r'^: "\$\{([A-Z][A-Z0-9_]+):=', re.M)


def settings_class(member: str) -> type[BaseSettings]:
    return load_class(SETTINGS_CLASSES[member])


def load_class(path: str) -> type[BaseSettings]:
    module_name, class_name = path.split(":")
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


def _package_dir(member: str) -> Path:
    return next(path for path in (REPO_ROOT / member / "src").iterdir() if (path / "__init__.py").exists())


def environ_reads(member: str) -> set[str]:
    """Names the member's own code reads from ``os.environ`` (not through its settings class)."""
    names: set[str] = set()
    for path in _package_dir(member).rglob("*.py"):
        for match in _ENVIRON_READ.finditer(path.read_text()):
            names.add(match[1] or match[2])
    return names


def settings_classes_in(member: str) -> set[str]:
    """``module:Class`` of every class in the member's package whose bases are settings classes (read
    from the source, nothing imported): the member's settings class and any other one added later."""
    found = set()
    package = _package_dir(member)
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        module_name = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(ast.unparse(base).endswith("Settings") for base in node.bases):
                found.add(f"{module_name}:{node.name}")
    return found


def proxy_reads() -> set[str]:
    return set(_ENTRYPOINT_DEFAULT.findall(PROXY_ENTRYPOINT.read_text()))


def reads(service: str, definition: dict[str, Any]) -> set[str]:
    """The variables compose service ``service`` reads (empty for images we do not configure)."""
    for path, runner in SERVICE_SETTINGS.items():
        if runner == service:
            return variable_names(load_class(path))
    member = (definition.get("build") or {}).get("args", {}).get("MEMBER")
    if member:
        return variable_names(settings_class(member)) | environ_reads(member)
    if service == "proxy":
        return proxy_reads()
    return set()


@dataclass(frozen=True)
class Documented:
    """A variable of `.env.example` and the comment lines of its paragraph."""

    name: str
    comment: str
    paragraph: tuple[str, ...]  # every variable of that paragraph


def documented() -> dict[str, Documented]:
    """Every variable `.env.example` lists (set or commented out), with its paragraph's comments."""
    found: dict[str, Documented] = {}
    for block in re.split(r"\n\s*\n", ENV_EXAMPLE.read_text()):
        lines = block.splitlines()
        names = tuple(m[1] for line in lines if (m := re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)))
        comment = " ".join(line.lstrip("# ") for line in lines if not re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line))
        for name in names:
            found[name] = Documented(name, comment, names)
    return found


def says_compose_sets(entry: Documented, fixed: set[str]) -> bool:
    """Whether the paragraph says that compose sets ``entry`` itself (so a value in `.env` is not used):
    a sentence "Compose sets NAME…", or "Compose sets these/them/it" when every variable there is fixed."""
    for sentence in re.split(r"(?<=[.;])\s+", entry.comment):
        said = re.search(r"\b[Cc]ompose sets\b(.*)", sentence)
        if not said:
            continue
        if re.search(rf"\b{entry.name}\b", said[1]):
            return True
        if re.match(r"\s*(it|them|these|this)\b", said[1]) and set(entry.paragraph) <= fixed:
            return True
    return False
