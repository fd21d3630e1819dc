"""Expiry records: which old versions ``gc`` retention expired, written before anything is deleted.

``<dataset>/_retention/expired-vNNNNNNNN.json`` says that every version up to and including
``NNNNNNNN`` is expired, and lists the data files that only those versions listed. It is created
exclusively (``create_exclusive``, so it is complete or absent) *before* ``gc`` removes a single
manifest or file: a ``gc`` killed at any point after it leaves a record that the next ``gc`` reads
to finish the job, and readers use the newest record to explain why a version is gone. Records
are never rewritten; the highest number is the current one (numbers only grow, as expiry only
ever moves forward).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fsspec import AbstractFileSystem

from catalog.exclusive import create_exclusive
from catalog.storage import is_local, join
from schemas import ManifestError

__all__ = [
    "EXPIRY_DIR",
    "ExpiredVersion",
    "ExpiryRecord",
    "expired_message",
    "latest_record",
    "record_path",
    "write_record",
]

EXPIRY_DIR = "_retention"
_NAME = re.compile(r"^expired-v(\d{8})\.json$")


@dataclass(frozen=True)
class ExpiredVersion:
    """One version a ``gc`` expired: its number, when it was committed, and by which run."""

    version: int
    created_at: str
    run_id: str


@dataclass(frozen=True)
class ExpiryRecord:
    """What one ``gc`` expired.

    Args:
        through: every version ``<= through`` is expired (expiry is always a prefix).
        oldest_live: the oldest version kept when the record was written.
        created_at / run_id: when, and by which ``gc`` run (UTC ISO time, a run id).
        policy: the retention asked for (``keep_versions``, ``keep_for_s``), for the record.
        versions: the versions this record expired (earlier records hold the older ones).
        files: data/reject paths (relative) that only expired versions listed: ``gc`` deletes them.
        bytes: their total size, as the manifests gave it.
    """

    through: int
    oldest_live: int
    created_at: str
    run_id: str
    policy: dict[str, Any] = field(default_factory=dict)
    versions: tuple[ExpiredVersion, ...] = ()
    files: tuple[str, ...] = ()
    bytes: int = 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> ExpiryRecord:
        try:
            obj = json.loads(raw)
            return cls(
                through=int(obj["through"]),
                oldest_live=int(obj["oldest_live"]),
                created_at=str(obj["created_at"]),
                run_id=str(obj.get("run_id", "")),
                policy=dict(obj.get("policy") or {}),
                versions=tuple(ExpiredVersion(**v) for v in obj.get("versions", ())),
                files=tuple(str(p) for p in obj.get("files", ())),
                bytes=int(obj.get("bytes", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{where}: malformed expiry record ({exc})") from None


def record_path(root: str, through: int) -> str:
    """The store path of the record that expires versions ``1..through``."""
    return join(root, EXPIRY_DIR, f"expired-v{through:08d}.json")


def latest_record(fs: AbstractFileSystem, root: str) -> ExpiryRecord | None:
    """The newest expiry record of the dataset at ``root``, or None if nothing was ever expired."""
    directory = join(root, EXPIRY_DIR)
    fs.invalidate_cache(directory)
    try:
        names = fs.ls(directory, detail=False, refresh=True)
    except FileNotFoundError:
        return None
    numbers = [int(m.group(1)) for m in (_NAME.match(n.rsplit("/", 1)[-1]) for n in names) if m]
    if not numbers:
        return None
    path = record_path(root, max(numbers))
    return ExpiryRecord.from_json(fs.cat_file(path), path)


def write_record(fs: AbstractFileSystem, root: str, record: ExpiryRecord) -> None:
    """Create ``record`` exclusively (whole or not at all); ``FileExistsError`` if it exists."""
    if is_local(fs):
        fs.makedirs(join(root, EXPIRY_DIR), exist_ok=True)
    create_exclusive(fs, record_path(root, record.through), record.to_json())


def expired_message(url: str, version: int, record: ExpiryRecord, oldest_live: int | None) -> str:
    """The one line a reader of an expired version gets: what happened and what is readable."""
    live = f"the oldest live version is {oldest_live}" if oldest_live else "no version is live"
    policy = record.policy
    kept = []
    if policy.get("keep_versions"):
        kept.append(f"--keep-versions {policy['keep_versions']}")
    if policy.get("keep_for"):
        kept.append(f"--keep-for {policy['keep_for']}")
    how = f" ({' '.join(kept)})" if kept else ""
    return (
        f"{url}: version {version} was expired by gc{how} at {record.created_at} "
        f"(versions 1..{record.through} are gone); {live}"
    )
