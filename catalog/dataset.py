"""A dataset at any fsspec URL: its versions, their live files, and the commit protocol (DESIGN.md §2).

A run writes only new, uniquely named files, then commits by creating the next
``manifests/vNNNNNNNN.json`` exclusively. Two committers racing for the same version: one wins,
the other gets ``FileExistsError`` from the store, re-reads the new latest version, rebases its
change onto it and tries the next number. Nothing is ever overwritten, so a reader holding a
version keeps a consistent view, and a crashed run leaves only unlisted files for ``gc``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from fsspec import AbstractFileSystem

from catalog.exclusive import create_exclusive
from catalog.expiry import ExpiryRecord, expired_message, latest_record
from catalog.storage import join, open_url, redact_url, to_url
from schemas import (
    DatasetInfo,
    FileEntry,
    KindSpec,
    Manifest,
    ManifestError,
    SchemaError,
    SourceEntry,
    TombstoneEntry,
    check_evolution,
    kind_spec,
    manifest_name,
    parse_manifest_name,
)

__all__ = [
    "CommitConflict",
    "CommitRequest",
    "Dataset",
    "DatasetError",
    "config_hash",
    "new_run_id",
    "utc_now",
]

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A user-facing problem with a dataset URL: missing, not a dataset, wrong kind, bad version."""


class CommitConflict(RuntimeError):
    """The commit cannot be applied on top of the latest version (or lost too many races)."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """A sortable, unique run id such as ``20261121T231500Z-3f9a1c2e`` (both parts injectable)."""
    now = now or utc_now()
    return f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{token or uuid.uuid4().hex[:8]}"


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a pipeline config."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _package_version() -> str:
    try:
        return metadata.version("shardsmith")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class CommitRequest:
    """What one run asks to commit.

    Args:
        run_id: the run's id (in the name of every file it wrote); a retried commit of the same
            run id is recognised and not applied twice.
        operation: ``append`` adds files; ``delete`` removes ``remove`` and adds the rewritten
            ``add``; ``overwrite`` replaces every live file with ``add``.
        add / remove: data files (relative paths) added to / removed from the latest version.
        rejects: reject files this run wrote.
        tombstones: the ``tombstones/`` file this run wrote (posts: the compliance state it
            changed); the version lists it with its number, after every earlier one.
        side_files: ``minhash/`` and ``near_duplicates/`` files this run wrote
            (``--dedup-near``), listed the same way.
        sources: sources this run consumed (merged with those of earlier versions).
        report / config / properties: stored as they are (config must hold no credentials).
        totals: this run's part of dataset-wide totals; the version stores each as
            ``properties["total_<name>"]``, its parent's total plus this run's (an overwrite
            starts from zero), so totals stay right when the commit is rebased.
        base_version: the version the run read. ``overwrite`` is refused if another version was
            committed since; ``append`` and ``delete`` rebase onto any newer version.
    """

    run_id: str
    operation: str = "append"
    add: Sequence[FileEntry] = ()
    remove: Sequence[str] = ()
    rejects: Sequence[FileEntry] = ()
    tombstones: Sequence[FileEntry] = ()
    side_files: Sequence[FileEntry] = ()
    sources: Sequence[SourceEntry] = ()
    report: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    totals: Mapping[str, int | float] = field(default_factory=dict)
    base_version: int | None = None


class Dataset:
    """A dataset directory: ``dataset.json``, ``manifests/``, ``data/``, ``rejects/``.

    Use ``Dataset.create(url, kind)`` (idempotent) or ``Dataset.open(url)``::

        ds = Dataset.create("s3://bucket/posts", "posts", storage_options={"anon": False})
        ds.latest_version()          # 0 while nothing is committed
        [f.path for f in ds.files()] # live files of the latest version

    ``info.schema`` is the schema every reader sees: this shardsmith's schema of the kind. A
    dataset created before the kind gained columns (``KindSpec.added_columns``) opens too:
    ``stored_schema`` is what its ``dataset.json`` says, ``missing_columns`` the columns it
    lacks, which read as nulls in files written without them (``schemas.evolution``).
    """

    def __init__(self, fs: AbstractFileSystem, root: str, info: DatasetInfo, url: str):
        self.fs = fs
        self.root = root
        self.info = info
        self.url = url
        # What dataset.json records, and the columns added to the kind since (schemas.evolution).
        self.stored_schema = info.schema
        self.missing_columns: tuple[str, ...] = ()
        self._manifests: dict[int, Manifest] = {}

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        url: str,
        kind: str | KindSpec,
        *,
        storage_options: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Dataset:
        """Create the dataset at ``url``, or open it if it exists with the same kind."""
        spec = kind_spec(kind)
        fs, root = open_url(url, storage_options)
        info = DatasetInfo(kind=spec.name, created_at=_iso(now or utc_now()), schema=spec.schema)
        fs.makedirs(join(root, "manifests"), exist_ok=True)
        with contextlib.suppress(FileExistsError):
            create_exclusive(fs, join(root, "dataset.json"), info.to_json())
        ds = cls.open(url, storage_options=storage_options)
        if ds.kind != spec.name:
            raise DatasetError(
                f"{redact_url(url)}: is a {ds.kind} dataset, expected a {spec.name} dataset"
            )
        return ds

    @classmethod
    def open(cls, url: str, *, storage_options: Mapping[str, Any] | None = None) -> Dataset:
        """Open an existing dataset; ``DatasetError`` if ``url`` holds none."""
        fs, root = open_url(url, storage_options)
        where = redact_url(to_url(fs, join(root, "dataset.json")))
        try:
            raw = fs.cat_file(join(root, "dataset.json"))
        except FileNotFoundError:
            raise DatasetError(
                f"{redact_url(url)}: not a shardsmith dataset (no dataset.json)"
            ) from None
        try:
            info = DatasetInfo.from_json(raw, where)
        except ManifestError as exc:
            raise DatasetError(str(exc)) from None
        try:
            missing = check_evolution(info.schema, info.kind)
        except SchemaError as exc:
            raise DatasetError(
                f"{where}: the {info.kind} schema differs from this version of shardsmith's: {exc}"
            ) from None
        ds = cls(fs, root, info, redact_url(url))
        if missing:
            # Read-side evolution: dataset.json is written once and never modified (like every
            # file of the commit protocol); readers fill the columns added since with nulls.
            ds.stored_schema = info.schema
            ds.missing_columns = missing
            ds.info = dataclasses.replace(info, schema=kind_spec(info.kind).schema)
        return ds

    # -- reading -------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def spec(self) -> KindSpec:
        return kind_spec(self.info.kind)

    def path(self, relative: str) -> str:
        """The store path of a file given relative to the dataset root."""
        return join(self.root, relative)

    def versions(self) -> list[int]:
        """Every committed version, ascending."""
        try:
            names = self.fs.ls(join(self.root, "manifests"), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(v for v in map(parse_manifest_name, names) if v is not None)

    def latest_version(self) -> int:
        """The newest committed version, or 0 if nothing has been committed."""
        versions = self.versions()
        return versions[-1] if versions else 0

    def manifest(self, version: int | None = None) -> Manifest | None:
        """The manifest of ``version`` (default: latest); None for an empty dataset."""
        if version is None:
            version = self.latest_version()
            if version == 0:
                return None
        if version in self._manifests:
            return self._manifests[version]
        name = join("manifests", manifest_name(version))
        try:
            raw = self.fs.cat_file(self.path(name))
        except FileNotFoundError:
            raise DatasetError(self._missing_version(version)) from None
        where = f"{self.url}/{name}"
        m = Manifest.from_json(raw, where)
        if m.version != version:
            raise ManifestError(f"{where}: says version {m.version}")
        self._manifests[version] = m
        return m

    def _missing_version(self, version: int) -> str:
        """Why ``version`` cannot be read: expired by ``gc`` (naming the oldest live version),
        or never committed (naming the live ones)."""
        record = self.expiry()
        through = record.through if record else 0
        live = [v for v in self.versions() if v > through]
        if record is not None and version <= through:
            return expired_message(self.url, version, record, live[0] if live else None)
        span = f"versions {live[0]}..{live[-1]}" if live else "no versions yet"
        return f"{self.url}: no version {version} ({span})"

    def evict(self, versions: Iterable[int]) -> None:
        """Forget the cached manifests of ``versions`` (``gc`` calls it for those it expires,
        so this object stops serving them from memory)."""
        for v in versions:
            self._manifests.pop(v, None)

    def expiry(self) -> ExpiryRecord | None:
        """The newest record of versions expired by ``gc`` retention, or None if none ever was."""
        return latest_record(self.fs, self.root)

    def files(self, version: int | None = None) -> tuple[FileEntry, ...]:
        """The live data files of ``version`` (default: latest)."""
        m = self.manifest(version)
        return m.files if m else ()

    def find_run(self, run_id: str, since: int = 0) -> Manifest | None:
        """The version committed by ``run_id`` after version ``since``, if any."""
        for v in reversed(self.versions()):
            if v <= since:
                break
            try:
                m = self.manifest(v)
            except DatasetError:
                # Expired by a gc since the listing: gc removes manifests oldest first, so
                # every older one is going too.
                break
            if m is not None and m.run_id == run_id:
                return m
        return None

    # -- committing ----------------------------------------------------------------------------

    def commit(
        self,
        request: CommitRequest,
        *,
        max_attempts: int = 200,
        now: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Manifest:
        """Commit ``request`` as the next version and return its manifest.

        Raises ``CommitConflict`` when the change cannot be rebased (an overwrite raced by
        another commit, a file to remove that is no longer live) or after ``max_attempts`` lost
        races. Retrying a commit whose run id is already committed returns that version.
        """
        if request.operation not in ("append", "overwrite", "delete"):
            raise ValueError(f"operation {request.operation!r}: expected append|overwrite|delete")
        self._check_written(request)
        since = request.base_version or 0
        for attempt in range(max_attempts):
            parent = self.manifest()
            done = self.find_run(request.run_id, since)
            if done is not None:
                return done
            manifest = self._next_manifest(parent, request, _iso(now()))
            try:
                create_exclusive(
                    self.fs,
                    self.path(join("manifests", manifest_name(manifest.version))),
                    manifest.to_json(),
                )
            except FileExistsError:
                # Lost a race: back off a little (jittered, so racers spread out) and rebase.
                sleep(min(0.5, 0.005 * (2 ** min(attempt, 6))) * random.random())
                continue
            self._manifests[manifest.version] = manifest
            log.info("committed %s version %d (%s)", self.url, manifest.version, request.operation)
            return manifest
        raise CommitConflict(
            f"{self.url}: gave up committing run {request.run_id} after {max_attempts} lost races"
        )

    def _check_written(self, request: CommitRequest) -> None:
        # A file that is missing now (a crashed writer, or gc racing a slow run) must never be
        # listed: fail the commit instead of publishing a version that cannot be read.
        self.fs.invalidate_cache()
        for entry in (*request.add, *request.rejects, *request.tombstones, *request.side_files):
            if not self.fs.exists(self.path(entry.path)):
                raise CommitConflict(f"{self.url}: {entry.path} was not written (or was removed)")

    def _next_manifest(
        self, parent: Manifest | None, request: CommitRequest, created_at: str
    ) -> Manifest:
        parent_version = parent.version if parent else 0
        live = list(parent.files) if parent else []
        if request.operation == "overwrite":
            if parent_version != (request.base_version or 0):
                raise CommitConflict(
                    f"{self.url}: overwrite based on version {request.base_version or 0}, "
                    f"but version {parent_version} was committed since"
                )
            live = []
        removed = set(request.remove)
        missing = removed - {f.path for f in live}
        if missing:
            raise CommitConflict(
                f"{self.url}: cannot remove {sorted(missing)[0]}: not live in version "
                f"{parent_version} (removed by a concurrent run?)"
            )
        self._check_sources_not_taken(parent, request)
        files = [f for f in live if f.path not in removed] + list(request.add)
        sources = {s.uri: s for s in (parent.sources if parent else ())}
        sources.update({s.uri: s for s in request.sources})
        config = dict(request.config)
        properties = dict(request.properties)
        inherited = parent.properties if parent and request.operation != "overwrite" else {}
        for name, value in request.totals.items():
            properties[f"total_{name}"] = inherited.get(f"total_{name}", 0) + value
        return Manifest(
            version=parent_version + 1,
            parent_version=parent_version or None,
            run_id=request.run_id,
            created_at=created_at,
            operation=request.operation,
            files=tuple(files),
            rejects=(*(parent.rejects if parent else ()), *request.rejects),
            # Kept through an overwrite too: a removal holds for every later version.
            tombstones=(
                *(parent.tombstones if parent else ()),
                *(
                    TombstoneEntry(e.path, e.rows, e.bytes, e.checksum, parent_version + 1)
                    for e in request.tombstones
                ),
            ),
            # Not kept through an overwrite: the signatures are of posts no longer there.
            side_files=(
                *(parent.side_files if parent and request.operation != "overwrite" else ()),
                *(
                    TombstoneEntry(e.path, e.rows, e.bytes, e.checksum, parent_version + 1)
                    for e in request.side_files
                ),
            ),
            sources=tuple(sources[k] for k in sorted(sources)),
            report=dict(request.report),
            config=config,
            config_hash=config_hash(config),
            package_version=_package_version(),
            properties=properties,
        )

    def _check_sources_not_taken(self, parent: Manifest | None, request: CommitRequest) -> None:
        # Exactly-once for incremental runs: two runs that read the same new source (a retried
        # tick racing a slow one) must not both commit it. Sources recorded by a version newer
        # than the one this run started from refuse the commit; nothing is published twice.
        base = request.base_version or 0
        if not request.sources or parent is None or parent.version <= base:
            return
        before = {_source_key(s) for s in self.manifest(base).sources} if base else set()
        taken = {_source_key(s) for s in parent.sources} - before
        for source in request.sources:
            if _source_key(source) in taken:
                raise CommitConflict(
                    f"{self.url}: {redact_url(source.uri)} was consumed by a version committed "
                    f"after version {base}, which this run started from; nothing committed "
                    f"(run again: an --incremental run skips it)"
                )

    def __repr__(self) -> str:
        return f"Dataset({self.url!r}, kind={self.kind!r})"


def _source_key(source: SourceEntry) -> tuple:
    return (source.uri, source.size, source.mtime, source.etag)
