"""Retention: expire old versions and delete every file that only they listed.

Time travel keeps every version's files, so a post removed by a compliance delete stays in the
files of the versions before the delete. ``expire_versions`` ends that: it keeps the newest
versions a ``RetentionPolicy`` asks for (never fewer than the latest one), expires every older
one, and deletes the files no kept version lists, so no file under the dataset still holds what
the kept versions removed.

Crash safety, in this order (each step safe to repeat):

1. write the expiry record (``catalog.expiry``): the versions to expire and the files to delete,
   created exclusively, so it is whole or absent;
2. remove the expired manifests, oldest first: the versions left are always a contiguous run
   ending at the latest, and every one of them still has all its files;
3. delete the files the record lists, none of which a kept version lists.

A ``gc`` killed anywhere leaves every kept version readable, and the next ``gc`` finishes the
newest record's job before doing anything else. Hold the dataset's lock while calling this (as
``shardsmith gc`` does): a run committing meanwhile could list a version this is expiring.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from catalog.dataset import CommitConflict, Dataset, utc_now
from catalog.expiry import EXPIRY_DIR, ExpiredVersion, ExpiryRecord, write_record
from catalog.gc import listed_entries, listed_paths
from catalog.storage import is_local, join
from schemas import Manifest, manifest_name

__all__ = ["ExpireResult", "RetentionPolicy", "expire_versions"]

log = logging.getLogger(__name__)

# Files deleted per call: one S3 DeleteObjects request takes up to 1,000 keys.
_DELETE_BATCH = 1000


@dataclass(frozen=True)
class RetentionPolicy:
    """Which versions ``gc`` keeps: the union of what each given rule keeps, and always the latest.

    Args:
        keep_versions: keep the newest N versions (N >= 1).
        keep_for: keep every version committed less than this long ago (by its manifest's
            ``created_at``), and every version after it.

    Expiry is always a prefix: versions older than the oldest kept one expire, so a version kept
    for its age keeps every newer one too. Example: ``RetentionPolicy(keep_versions=3)`` on
    versions 1..10 keeps 8, 9, 10.
    """

    keep_versions: int | None = None
    keep_for: timedelta | None = None

    def __post_init__(self):
        if self.keep_versions is None and self.keep_for is None:
            raise ValueError("RetentionPolicy: give keep_versions, keep_for, or both")
        if self.keep_versions is not None and (
            isinstance(self.keep_versions, bool)
            or not isinstance(self.keep_versions, int)
            or self.keep_versions < 1
        ):
            raise ValueError(
                f"keep_versions={self.keep_versions!r}: expected an integer >= 1 "
                "(the latest version is always kept)"
            )
        if self.keep_for is not None and self.keep_for < timedelta(0):
            raise ValueError(f"keep_for={self.keep_for!r}: expected a duration >= 0")

    def oldest_kept(self, manifests: Sequence[Manifest], now: datetime) -> int:
        """The oldest version to keep among ``manifests`` (ascending, not empty)."""
        oldest = manifests[-1].version
        if self.keep_versions is not None:
            oldest = min(oldest, manifests[-min(self.keep_versions, len(manifests))].version)
        if self.keep_for is not None:
            cutoff = now - self.keep_for
            young = [m.version for m in manifests if _created(m) >= cutoff]
            if young:
                oldest = min(oldest, young[0])
        return oldest

    def describe(self) -> dict:
        """The policy as stored in an expiry record."""
        return {
            "keep_versions": self.keep_versions,
            "keep_for": _duration(self.keep_for) if self.keep_for is not None else None,
        }


@dataclass(frozen=True)
class ExpireResult:
    """What ``expire_versions`` did (or, on a dry run, would do).

    Args:
        expired: versions this call expired.
        finished: versions an interrupted earlier ``gc`` had expired whose removal this call
            finished (their manifests or files were still there).
        removed: files (relative paths) deleted because only expired versions listed them.
        removed_bytes: their size.
        oldest_live: the oldest version readable afterwards (0 for an empty dataset).
        total_expired: how many versions the dataset has expired so far, this call included.
    """

    expired: tuple[int, ...]
    finished: tuple[int, ...]
    removed: tuple[str, ...]
    removed_bytes: int
    oldest_live: int
    total_expired: int


def expire_versions(
    dataset: Dataset,
    policy: RetentionPolicy | None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    run_id: str = "",
) -> ExpireResult:
    """Finish an interrupted expiry, then expire the versions ``policy`` does not keep.

    ``policy=None`` only finishes what an interrupted ``gc`` left. ``dry_run`` changes nothing
    and returns what would be done. ``now`` (UTC) and ``run_id`` are recorded in the expiry
    record. Example::

        with DatasetLock(url, command="gc").acquire():
            expire_versions(Dataset.open(url), RetentionPolicy(keep_versions=5))
    """
    now = now or utc_now()
    fs, root = dataset.fs, dataset.root
    fs.invalidate_cache()
    record = dataset.expiry()
    through = record.through if record else 0
    versions = dataset.versions()
    live = [v for v in versions if v > through]
    manifests = {v: dataset.manifest(v) for v in live}
    on_disk = _data_files(dataset)

    finished: list[int] = []
    removed: list[str] = []
    sizes: dict[str, int] = {}
    if record is not None:
        # A gc killed after writing its record: redo steps 2 and 3 (both idempotent).
        keep = _paths(manifests.values())
        stale = [v for v in versions if v <= through]
        left = [p for p in record.files if p in on_disk and p not in keep]
        if stale or left:
            finished = [v.version for v in record.versions] or stale
            if not dry_run:
                _apply(dataset, stale, left)
            removed += left
            sizes.update((p, on_disk[p]) for p in left)

    expired: list[int] = []
    oldest_live = live[0] if live else 0
    if policy is not None and live:
        oldest_live = policy.oldest_kept([manifests[v] for v in live], now)
        expired = [v for v in live if v < oldest_live]
    if expired:
        keep = _paths(manifests[v] for v in live if v >= oldest_live)
        doomed = _paths(manifests[v] for v in expired) - keep
        declared = {e.path: e.bytes for v in expired for e in listed_entries(manifests[v])}
        new = ExpiryRecord(
            through=expired[-1],
            oldest_live=oldest_live,
            created_at=_iso(now),
            run_id=run_id,
            policy=policy.describe() if policy else {},
            versions=tuple(
                ExpiredVersion(v, manifests[v].created_at, manifests[v].run_id) for v in expired
            ),
            files=tuple(sorted(doomed)),
            bytes=sum(declared[p] for p in doomed),
        )
        left = [p for p in new.files if p in on_disk]
        if not dry_run:
            try:
                write_record(fs, root, new)
            except FileExistsError:
                raise CommitConflict(
                    f"{dataset.url}: another gc expired versions up to {new.through} meanwhile "
                    "(is the dataset's lock held?); run gc again"
                ) from None
            _sync_dir(fs, join(root, EXPIRY_DIR))
            _apply(dataset, expired, left)
            log.info(
                "gc %s: expired versions %d..%d, removed %d files",
                dataset.url,
                expired[0],
                expired[-1],
                len(left),
            )
        removed += left
        sizes.update((p, on_disk[p]) for p in left)
    return ExpireResult(
        expired=tuple(expired),
        finished=tuple(finished),
        removed=tuple(removed),
        removed_bytes=sum(sizes.values()),
        oldest_live=oldest_live,
        total_expired=expired[-1] if expired else through,
    )


def _apply(dataset: Dataset, versions: Iterable[int], files: Sequence[str]) -> None:
    """Steps 2 and 3: remove the expired manifests oldest first, then the files."""
    fs = dataset.fs
    versions = sorted(versions)
    dataset.evict(versions)
    for v in versions:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(dataset.path(join("manifests", manifest_name(v))))
    # The manifests' removal must outlive a power cut before their files go: a manifest that
    # came back would list deleted files.
    _sync_dir(fs, dataset.path("manifests"))
    ordered = sorted(files)
    for start in range(0, len(ordered), _DELETE_BATCH):
        batch = [dataset.path(p) for p in ordered[start : start + _DELETE_BATCH]]
        try:
            fs.rm(batch)
        except FileNotFoundError:
            # One went meanwhile (some stores stop a batch at it): the rest one by one.
            for path in batch:
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(path)


def _data_files(dataset: Dataset) -> dict[str, int]:
    """Every file under ``data/`` and ``rejects/`` (relative path -> size), one listing each."""
    out: dict[str, int] = {}
    for top in ("data", "rejects"):
        try:
            found = dataset.fs.find(dataset.path(top), detail=True)
        except FileNotFoundError:
            continue
        for path, info in found.items():
            if info.get("type") != "directory":
                out[path[len(dataset.root) :].lstrip("/")] = int(info.get("size") or 0)
    return out


def _paths(manifests: Iterable[Manifest]) -> set[str]:
    out: set[str] = set()
    for m in manifests:
        out |= listed_paths(m)
    return out


def _sync_dir(fs, path: str) -> None:
    # Local disk only: make a directory's new or removed entries durable. Object stores
    # acknowledge a PUT or DELETE once it is durable.
    if not is_local(fs):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _created(manifest: Manifest) -> datetime:
    ts = datetime.fromisoformat(manifest.created_at.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(td: timedelta) -> str:
    seconds = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
