"""Which collection serves, which one is being built, and the atomic swap between them.

``QDRANT_COLLECTION`` (say ``images``) is an alias. ``dyimages reindex`` makes ``images_<UTC timestamp>``
beside the serving collection, points the alias ``images__building`` at it (that alias is the control
record the indexer reads), republishes every stored image, and when the new collection holds every one
of them swaps in one ``update_collection_aliases`` call: ``images`` moves to the new collection and
``images__building`` goes. Until then searches read the old collection; a reindex that fails or is
killed leaves it serving, and running ``dyimages reindex`` again resumes into the same new collection.

The indexer writes each batch to every *target* (:func:`write_targets`): the serving collection when it
holds this model's vectors, and the collection being built when there is one of this model. So images
downloaded during a reindex reach both, and after a model change (the serving collection is of the old
model) the indexer writes to the new one only.

A collection really named ``images`` (made before aliases were used) cannot share its name with an
alias (Qdrant refuses it, embedded mode included), so the first swap deletes it and creates the alias
right after: the one moment without an index, once per installation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dyimages_common import qdrant
from dyimages_common.image_index import ImageIndex
from dyimages_common.store_errors import CollectionMismatchError, classify

log = logging.getLogger(__name__)


def building_alias(index: ImageIndex) -> str:
    return index.name + qdrant.BUILDING_SUFFIX


def building(index: ImageIndex) -> str | None:
    """The collection a reindex is building, or None."""
    return index.aliases().get(building_alias(index))


def ensure_serving(index: ImageIndex, *, dim: int, model: str, pretrained: str | None) -> bool:
    """Make a first collection and its alias when nothing serves yet; True when this call made them. A
    collection that serves already gets the payload indexes it lacks (made by an older release).

    Safe with several replicas at once: the one whose alias lost the race deletes its own collection.
    """
    serving = index.serving()
    if serving is not None:
        added = index.ensure_indexes(serving)
        if added:
            log.info("added payload indexes %s to %s", ", ".join(added), serving)
        return False
    name = qdrant.new_collection_name(index.name)
    index.create_collection(name, dim=dim, model=model, pretrained=pretrained)
    try:
        index.change_aliases([qdrant.create_alias(index.name, name)])
    except Exception as exc:
        index.delete_collection(name)
        if index.serving() is None:
            raise classify(exc) from exc
        return False
    return True


def write_targets(index: ImageIndex, *, dim: int, model: str, pretrained: str | None) -> list[str]:
    """The collections this model's vectors go to now (see the module docstring).

    Raises CollectionMismatchError when neither the serving collection nor one being built is this model's.
    """
    serving = index.serving()
    if serving is None:
        ensure_serving(index, dim=dim, model=model, pretrained=pretrained)
        serving = index.serving()
    targets: list[str] = []
    problem: CollectionMismatchError | None = None
    for name in (serving, building(index)):
        found = index.collection_model(name) if name else None
        if found is None:
            continue
        try:
            found.check(dim=dim, model=model, pretrained=pretrained)
        except CollectionMismatchError as exc:
            problem = problem or exc
            continue
        targets.append(found.name)
    if not targets:
        raise problem or CollectionMismatchError(f"no collection for model {model!r}")
    return targets


def begin_build(index: ImageIndex, *, dim: int, model: str, pretrained: str | None) -> tuple[str, bool]:
    """The collection to build for this model: the one already being built (resumed) when it is of this
    model, else a new one. Returns (name, resumed). With nothing serving (a first index, or after
    ``dyimages drop``) there is nothing to keep serving: the new collection serves at once."""
    current = building(index)
    if current is None and index.serving() is None:
        ensure_serving(index, dim=dim, model=model, pretrained=pretrained)
        return index.serving() or "", False
    if current is not None:
        found = index.collection_model(current)
        if found is not None and found.matches(dim=dim, model=model, pretrained=pretrained):
            return current, True
        log.warning("abandoning collection %s (built for another model)", current)
        index.change_aliases([qdrant.delete_alias(building_alias(index))])
        index.delete_collection(current)
    name = qdrant.new_collection_name(index.name)
    index.create_collection(name, dim=dim, model=model, pretrained=pretrained)
    index.change_aliases([qdrant.create_alias(building_alias(index), name)])
    return name, False


def missing_from_build(index: ImageIndex, sha256s: Iterable[str]) -> list[str]:
    """The images not yet in the collection being built (or the serving one when none is being built)."""
    wanted = set(sha256s)
    current = building(index) or index.serving()
    if current is None:
        return sorted(wanted)
    held = {point.sha256 for _, point in index.points(current)}
    return sorted(wanted - held)


def swap(index: ImageIndex) -> tuple[str, str | None]:
    """Point the alias at the collection built, atomically, and delete the old collection.

    Returns (new, old). Raises RuntimeError when nothing is being built.
    """
    new = building(index)
    if new is None:
        raise RuntimeError(f"no collection is being built for {index.name!r}: run `dyimages reindex` first")
    old = index.serving()
    operations = [qdrant.delete_alias(building_alias(index)), qdrant.create_alias(index.name, new)]
    if old == index.name:  # a collection made before aliases: see the module docstring
        index.delete_collection(old)
        old = None
    elif old is not None:
        operations.insert(0, qdrant.delete_alias(index.name))
    index.change_aliases(operations)
    if old is not None and old != new:
        index.delete_collection(old)
    log.info("index %s now served by %s (was %s)", index.name, new, old)
    return new, old


def drop(index: ImageIndex) -> list[str]:
    """Delete the serving collection, any being built, and their aliases; returns the collections deleted."""
    names = [name for name in (index.serving(), building(index)) if name]
    known = index.aliases()
    index.change_aliases(
        [qdrant.delete_alias(alias) for alias in (index.name, building_alias(index)) if alias in known]
    )
    return [name for name in names if index.delete_collection(name)]
