"""What one look at the folder means against the state: what to read, rename, forget or refuse.

Pure bookkeeping, no I/O. A file is read only once its stat held still for DOWNLOADER_LIBRARY_SETTLE_S
(:class:`Settling`): a photo being copied in grows, and its size and times change until the copy ends.
A known file that vanished while a new path appeared with the same inode, size and mtime was renamed or
moved: its hash carries over and nothing is read. A known file that is not there is gone, except when
its folder could not be listed, or when the whole folder looks empty (an unmounted share must not
empty the index): those are held, not removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dyimages_common.library.walk import Refusal, Stat, Walk


@dataclass(frozen=True, slots=True)
class Known:
    """A file as the state holds it."""

    stat: Stat
    status: str  # done | failed
    sha256: str | None


class Settling:
    """New or changed files waiting until their stat stops changing for ``settle_s`` seconds."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._seen: dict[str, tuple[Stat, float]] = {}

    def settled(self, path: str, stat: Stat, now: float) -> bool:
        """Whether ``path`` has looked like ``stat`` for ``settle_s`` (it is forgotten then)."""
        seen = self._seen.get(path)
        if self.settle_s > 0 and (seen is None or seen[0] != stat):
            self._seen[path] = (stat, now)
            return False
        if self.settle_s > 0 and now - seen[1] < self.settle_s:  # type: ignore[index]
            return False
        self._seen.pop(path, None)
        return True

    def keep_only(self, paths: Iterable[str]) -> None:
        """Forget files that vanished (or settled otherwise) before they held still."""
        alive = set(paths)
        for path in [path for path in self._seen if path not in alive]:
            del self._seen[path]

    def paths(self) -> list[str]:
        return sorted(self._seen)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class Plan:
    ready: dict[str, Stat] = field(default_factory=dict)  # new or changed, settled: read them
    renamed: list[tuple[str, str, Stat]] = field(default_factory=list)  # (old path, new path, its stat)
    gone: list[str] = field(default_factory=list)
    refused: dict[str, Refusal] = field(default_factory=dict)  # new or changed refusals to record
    unchanged: int = 0
    held: int = 0  # known files not seen, kept (their folder unlisted, or the whole folder looks unmounted)

    @property
    def changes(self) -> int:
        return len(self.ready) + len(self.renamed) + len(self.gone) + len(self.refused)


def _under(path: str, folders: list[str]) -> bool:
    return any(path.startswith(folder + "/") for folder in folders)


def plan_changes(known: Mapping[str, Known], walk: Walk, settling: Settling, now: float) -> Plan:
    """Hold ``walk`` against ``known``; settling files are remembered in ``settling``."""
    plan = Plan()
    moved: dict[str, Stat] = {}  # new or changed paths
    for path, stat in walk.files.items():
        entry = known.get(path)
        if entry is not None and entry.stat == stat:
            plan.unchanged += 1  # done, or failed: not read again until it changes or is retried
        else:
            moved[path] = stat
    missing = [path for path in known if path not in walk.files and path not in walk.refused]
    looks_unmounted = not walk.files and not walk.refused and any(k.status == "done" for k in known.values())
    gone: list[str] = []
    for path in missing:
        if looks_unmounted or _under(path, walk.unlisted):
            plan.held += 1
        else:
            gone.append(path)
    by_file: dict[tuple[int, int, int], str] = {}
    for path in gone:
        entry = known[path]
        if entry.status == "done":
            by_file[(entry.stat.inode, entry.stat.size, entry.stat.mtime_ns)] = path
    renamed_from: set[str] = set()
    for path, stat in sorted(moved.items()):
        if path in known:
            continue  # changed in place: read again once settled
        old = by_file.pop((stat.inode, stat.size, stat.mtime_ns), None)
        if old is not None:
            plan.renamed.append((old, path, stat))
            renamed_from.add(old)
    renamed_to = {new for _, new, _ in plan.renamed}
    plan.gone = [path for path in gone if path not in renamed_from]
    for path, stat in sorted(moved.items()):
        if path not in renamed_to and settling.settled(path, stat, now):
            plan.ready[path] = stat
    settling.keep_only(path for path in moved if path not in renamed_to and path not in plan.ready)
    for path, refusal in walk.refused.items():
        entry = known.get(path)
        if entry is None or entry.status != "failed" or entry.stat != refusal.stat:
            plan.refused[path] = refusal
    return plan
