"""Which collection serves, which one is being built, and the atomic swap between them.

``QDRANT_COLLECTION`` (say ``images``) is a name (:meth:`ImageStore.rename`; a Qdrant alias on the server,
a pointer file in an Edge folder). ``dyimages reindex`` makes ``images_<UTC timestamp>`` beside the serving
collection, points the name ``images__building`` at it (that name is the control record the indexer reads),
republishes every stored image, and when the new collection holds every one of them swaps in one
``rename``: ``images`` moves to the new collection and ``images__building`` goes. Until then searches
read the old collection; a reindex that fails or is killed leaves it serving, and running
``dyimages reindex`` again resumes into the same new collection.

The indexer writes each batch to every *target* (:func:`write_targets`): the serving collection when it
holds this model's vectors, and the collection being built when there is one of this model. So images
downloaded during a reindex reach both, and after a model change (the serving collection is of the old
model) the indexer writes to the new one only.

A collection really named ``images`` (made before aliases were used, on a Qdrant server or qdrant-client's
embedded mode) is upgraded by the first swap, which names the new collection first and deletes the old one
after, where the engine lets a name stand over a collection (Qdrant Edge's pointer file). Qdrant itself
refuses an alias that has a collection's name: there the old collection is deleted and the alias made right
after (the one moment without an index, once per installation); should the alias fail then, the building
name still holds the complete new collection and `dyimages reindex --finish` names it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from dyimages_common.store.errors import CollectionMismatchError, StoreUnavailable
from dyimages_common.store.protocol import ImageStore

log = logging.getLogger(__name__)

BUILDING_SUFFIX = "__building"


def new_collection_name(name: str) -> str:
    """``<name>_<UTC timestamp to the microsecond>``: a fresh collection beside the serving one."""
    return f"{name}_{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"


def building_name(index: ImageStore) -> str:
    return index.name + BUILDING_SUFFIX


def building(index: ImageStore) -> str | None:
    """The collection a reindex is building, or None."""
    return index.names().get(building_name(index))


def ensure_serving(index: ImageStore, *, dim: int, model: str, pretrained: str | None) -> bool:
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
    name = new_collection_name(index.name)
    index.create_collection(name, dim=dim, model=model, pretrained=pretrained)
    try:
        index.rename({index.name: name})
    except Exception:  # another replica named its own collection first, or the store refused
        index.delete_collection(name)
        if index.serving() is None:
            raise
        return False
    return True


def write_targets(index: ImageStore, *, dim: int, model: str, pretrained: str | None) -> list[str]:
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


def begin_build(index: ImageStore, *, dim: int, model: str, pretrained: str | None) -> tuple[str, bool]:
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
        index.rename({building_name(index): None})
        index.delete_collection(current)
    name = new_collection_name(index.name)
    index.create_collection(name, dim=dim, model=model, pretrained=pretrained)
    index.rename({building_name(index): name})
    return name, False


def missing_from_build(index: ImageStore, sha256s: Iterable[str]) -> list[str]:
    """The images not yet in the collection being built (or the serving one when none is being built)."""
    wanted = set(sha256s)
    current = building(index) or index.serving()
    if current is None:
        return sorted(wanted)
    held = {point.sha256 for _, point in index.points(current)}
    return sorted(wanted - held)


def swap(index: ImageStore) -> tuple[str, str | None]:
    """Point the alias at the collection built, atomically, and delete the old collection.

    Returns (new, old). Raises RuntimeError when nothing is being built.
    """
    new = building(index)
    if new is None:
        raise RuntimeError(f"no collection is being built for {index.name!r}: run `dyimages reindex` first")
    old = index.serving()
    if old == index.name:  # a collection made before aliases: see the module docstring
        _swap_over_legacy(index, new)
        old = None
    else:
        index.rename({building_name(index): None, index.name: new})
    if old is not None and old != new:
        index.delete_collection(old)
    log.info("index %s now served by %s (was %s)", index.name, new, old)
    return new, old


def _swap_over_legacy(index: ImageStore, new: str) -> None:
    """Name ``new`` over the collection really named like the alias, then delete that one; where the engine
    refuses a name over a collection, delete it first (nothing else can be done there)."""
    try:
        index.rename({building_name(index): None, index.name: new})
    except StoreUnavailable:
        raise  # not answering: nothing was changed, nothing is deleted
    except Exception:  # the engine's refusal takes its own form on each engine
        log.warning("the store refuses the name %s over the collection of that name: deleting it first", index.name)
        index.delete_collection(index.name)
        index.rename({building_name(index): None, index.name: new})
        return
    index.delete_collection(index.name)


def drop(index: ImageStore) -> list[str]:
    """Delete the serving collection, any being built, and their aliases; returns the collections deleted."""
    collections = [name for name in (index.serving(), building(index)) if name]
    known = index.names()
    index.rename({name: None for name in (index.name, building_name(index)) if name in known})
    return [name for name in collections if index.delete_collection(name)]
