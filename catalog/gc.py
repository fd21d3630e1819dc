"""Garbage collection: remove files that no committed version lists (crashed or failed runs)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from catalog.dataset import Dataset, utc_now
from catalog.staging import STAGING_DIR
from catalog.storage import join, modified_at
from schemas import FileEntry, Manifest, manifest_name

__all__ = ["GcResult", "collect_garbage", "listed_entries", "listed_paths"]

log = logging.getLogger(__name__)

# Where runs write. A file here that no version lists is an orphan (no version lists staged
# rows: a run removes its staging area when it ends, so what is left there is a crashed run's).
_RUN_DIRS = (
    "data",
    "rejects",
    "tombstones",
    "minhash",
    "near_duplicates",
    "manifests",
    STAGING_DIR,
)


def listed_entries(manifest: Manifest) -> Iterator[FileEntry]:
    """Every file ``manifest`` lists: data, rejects, and any other list of ``FileEntry`` a
    manifest holds, so a file kind added to the manifest later is kept by ``gc`` unchanged."""
    for f in fields(manifest):
        value = getattr(manifest, f.name)
        if isinstance(value, tuple):
            yield from (e for e in value if isinstance(e, FileEntry))


def listed_paths(manifest: Manifest) -> set[str]:
    """The paths (relative to the root) of ``listed_entries(manifest)``."""
    return {e.path for e in listed_entries(manifest)}


@dataclass(frozen=True)
class GcResult:
    """What ``collect_garbage`` did: paths (relative to the root) removed, and young orphans kept."""

    removed: tuple[str, ...]
    removed_bytes: int
    kept_young: tuple[str, ...]


def collect_garbage(
    dataset: Dataset,
    *,
    min_age: timedelta = timedelta(hours=1),
    dry_run: bool = False,
    now: datetime | None = None,
) -> GcResult:
    """Remove every file under ``data/``, ``rejects/``, ``tombstones/``, ``minhash/``,
    ``near_duplicates/``, ``manifests/`` and ``_staging/`` that no version lists.

    Files younger than ``min_age`` are kept: they may belong to a run still writing, whose
    commit would otherwise fail (the commit checks its files exist, so it fails loudly, but the
    run's work would be lost). Pass ``timedelta(0)`` when no run can be in flight.
    """
    now = now or utc_now()
    versions = dataset.versions()
    referenced: set[str] = {"manifests/" + manifest_name(v) for v in versions}
    for v in versions:
        referenced.update(listed_paths(dataset.manifest(v)))
    fs, root = dataset.fs, dataset.root
    fs.invalidate_cache()
    removed: list[str] = []
    young: list[str] = []
    removed_bytes = 0
    for top in _RUN_DIRS:
        try:
            found = fs.find(join(root, top), detail=True)
        except FileNotFoundError:
            continue
        for path, info in sorted(found.items()):
            rel = path[len(root) :].lstrip("/")
            if rel in referenced or info.get("type") == "directory":
                continue
            if now - (modified_at(info) or now) < min_age:
                young.append(rel)
                continue
            if not dry_run:
                fs.rm_file(path)
            removed.append(rel)
            removed_bytes += int(info.get("size") or 0)
    if removed:
        log.info("gc %s: removed %d orphan files", dataset.url, len(removed))
    return GcResult(tuple(removed), removed_bytes, tuple(young))
