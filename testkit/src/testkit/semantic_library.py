"""The semantic tests' library: demo-world pictures chosen so that each test knows its answer.

Three red circles among circles of other colours and red shapes of other kinds, one picture with
three altered copies ("Similar"), and a unique best match for the filter tests whose domain,
format, width and height differ from most others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dyimages_common.embeddings.client import EmbeddingClient
from search_app.search.engine import search
from search_app.search.model import Hit, Query
from search_app.search.vectors import ServiceEmbedder
from testkit.demo_library import store_file, store_picture
from testkit.demo_world import Scene, altered_copies, draw
from testkit.indexed_library import Library, Picture

PHOTOS, ART = "photos.example", "art.example"


@dataclass(frozen=True)
class Entry:
    name: str
    scene: Scene
    side: int = 128
    fmt: str = "png"
    domain: str = PHOTOS
    height: int | None = None  # None: square


RED_CIRCLES = [
    Entry("red-circle-1", Scene("circle", "red", "large", "in the centre", "white")),
    Entry("red-circle-2", Scene("circle", "red", "small", "at the top left", "black"), fmt="jpeg"),
    Entry("red-circle-3", Scene("circle", "red", "large", "at the bottom right", "grey"), side=96),
]
OTHER_CIRCLES = [
    Entry("blue-circle", Scene("circle", "blue", "large", "in the centre", "white")),
    Entry("green-circle", Scene("circle", "green", "small", "at the top left", "black")),
    Entry("yellow-circle", Scene("circle", "yellow", "large", "at the bottom right", "grey"), fmt="jpeg"),
    Entry("purple-circle", Scene("circle", "purple", "large", "at the top right", "white")),
]
RED_OTHERS = [
    Entry("red-square", Scene("square", "red", "large", "in the centre", "white")),
    Entry("red-triangle", Scene("triangle", "red", "small", "at the top left", "black")),
    Entry("red-star", Scene("star", "red", "large", "at the bottom right", "grey")),
]
OTHERS = [
    Entry("blue-square", Scene("square", "blue", "small", "at the bottom left", "grey"), domain=ART),
    Entry("orange-triangle", Scene("triangle", "orange", "large", "at the top right", "black"), fmt="jpeg"),
    Entry("purple-star", Scene("star", "purple", "small", "in the centre", "white"), domain=ART),
    Entry("green-square", Scene("square", "green", "large", "at the top left", "grey"), side=200),
    Entry("yellow-triangle", Scene("triangle", "yellow", "small", "at the bottom left", "white"), side=96),
]
# The filter tests' target: the only 160 x 120 JPEG from art.example (green-square, 200 x 200, is wider and taller).
TARGET = Entry("target", Scene("star", "yellow", "large", "at the bottom left", "black"), 160, "jpeg", ART, 120)
# "Similar": this picture and its resized, re-encoded and cropped copies, all indexed.
ORIGINAL = Entry("original", Scene("triangle", "green", "large", "at the top right", "white"))
ENTRIES = [*RED_CIRCLES, *OTHER_CIRCLES, *RED_OTHERS, *OTHERS, TARGET, ORIGINAL]


@dataclass
class DemoLibrary:
    library: Library
    embedding_url: str
    pictures: dict[str, Picture] = field(default_factory=dict)  # by entry name
    copies: list[Picture] = field(default_factory=list)  # ORIGINAL's altered copies

    def name_of(self, sha256: str) -> str:
        return next(name for name, p in self.pictures.items() if p.sha256 == sha256)

    def search(self, query: Query, *, limit: int = 50, offset: int = 0, negative_weight: float = 0.5) -> list[Hit]:
        """The app's own search function, against this library (opens the embedded folder for the call)."""
        index = self.library.open_index()
        try:
            with EmbeddingClient(self.embedding_url) as embedding:
                return search(
                    index,
                    ServiceEmbedder(embedding),
                    query,
                    limit=limit,
                    offset=offset,
                    negative_weight=negative_weight,
                )
        finally:
            index.close()

    def names(self, query: Query, **kwargs: int | float) -> list[str]:
        return [self.name_of(hit.sha256) for hit in self.search(query, **kwargs)]  # type: ignore[arg-type]


def store_entry(images_dir: Path, entry: Entry, seed: int) -> Picture:
    image = draw(entry.scene, seed, entry.side)
    if entry.height is not None:
        image = image.resize((entry.side, entry.height))
    return store_picture(images_dir, image, (f"https://{entry.domain}/{entry.name}.{entry.fmt}",), entry.fmt)


def store_library(demo: DemoLibrary) -> list[Picture]:
    """Every entry and ORIGINAL's three altered copies, stored in the library's images folder (not yet indexed)."""
    images_dir = demo.library.images_dir
    demo.pictures = {entry.name: store_entry(images_dir, entry, 500 + i) for i, entry in enumerate(ENTRIES)}
    original = draw(ORIGINAL.scene, 500 + ENTRIES.index(ORIGINAL), ORIGINAL.side)
    for kind, data in altered_copies(original).items():
        copy = store_file(images_dir, data, (f"https://{PHOTOS}/copy-{kind}",))
        demo.copies.append(copy)
        demo.pictures[f"copy-{kind}"] = copy
    return list(demo.pictures.values())
