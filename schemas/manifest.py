"""The on-disk formats of a dataset: ``dataset.json`` and ``manifests/vNNNNNNNN.json`` (DESIGN.md §2).

Both are plain JSON, written once and never modified. Every path in a manifest is relative to the
dataset root and must stay inside ``data/``, ``rejects/``, ``tombstones/``, ``minhash/`` or
``near_duplicates/``: a manifest naming ``../x`` or an
absolute path is refused when it is read, so a hostile manifest cannot point readers (or ``gc``)
outside the dataset.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from schemas.kinds import kind_spec

__all__ = [
    "FORMAT_VERSION",
    "OPERATIONS",
    "DatasetInfo",
    "FileEntry",
    "Manifest",
    "ManifestError",
    "SourceEntry",
    "TombstoneEntry",
    "check_relative_path",
    "manifest_name",
    "parse_manifest_name",
]

FORMAT_VERSION = 1
OPERATIONS = ("append", "overwrite", "delete")
_MANIFEST_NAME = re.compile(r"^v(\d{8})\.json$")
_DATA_ROOTS = ("data/", "rejects/", "tombstones/", "minhash/", "near_duplicates/")


class ManifestError(ValueError):
    """A ``dataset.json`` or manifest is malformed or unsafe; the message names the file and field."""


def manifest_name(version: int) -> str:
    """``3`` -> ``"v00000003.json"``."""
    return f"v{version:08d}.json"


def parse_manifest_name(name: str) -> int | None:
    """``"v00000003.json"`` -> ``3``; anything else (temp files, strays) -> ``None``."""
    m = _MANIFEST_NAME.match(posixpath.basename(name))
    return int(m.group(1)) if m else None


def check_relative_path(path: str, where: str = "manifest") -> str:
    """Return ``path`` if it is a normalized relative path under one of the run directories
    (``data/``, ``rejects/``, ``tombstones/``, ``minhash/``, ``near_duplicates/``)."""
    bad = (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "\\" in path
        or "://" in path
        or posixpath.normpath(path) != path
        or any(part in ("", ".", "..") for part in path.split("/"))
        or not path.startswith(_DATA_ROOTS)
    )
    if bad:
        raise ManifestError(
            f"{where}: file path {path!r} is not a relative path under data/, rejects/, "
            f"tombstones/, minhash/ or near_duplicates/"
        )
    return path


@dataclass(frozen=True)
class FileEntry:
    """One live file of a version: its path relative to the dataset root, rows, bytes, checksum."""

    path: str
    rows: int
    bytes: int
    checksum: str

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> FileEntry:
        try:
            return cls(
                path=check_relative_path(obj["path"], where),
                rows=int(obj["rows"]),
                bytes=int(obj["bytes"]),
                checksum=str(obj["checksum"]),
            )
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{where}: file entry {obj!r} lacks {exc}") from None


@dataclass(frozen=True)
class TombstoneEntry(FileEntry):
    """A ``tombstones/`` file (``schemas.tombstones``) and the version that added it."""

    version: int = 0

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str) -> TombstoneEntry:
        entry = FileEntry.from_json(obj, where)
        try:
            return cls(**asdict(entry), version=int(obj["version"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: tombstone entry {obj!r} lacks {exc}") from None


@dataclass(frozen=True)
class SourceEntry:
    """A source consumed by some version: enough to tell whether it changed since."""

    uri: str
    size: int | None = None
    mtime: str | None = None
    etag: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SourceEntry:
        return cls(
            uri=obj["uri"], size=obj.get("size"), mtime=obj.get("mtime"), etag=obj.get("etag")
        )


@dataclass(frozen=True)
class Manifest:
    """One committed version of a dataset.

    ``files`` and ``rejects`` list every live file of this version (not a delta); ``sources`` is
    the union of the sources consumed by this and all earlier versions, so incremental runs can
    skip them. ``report`` holds the run's counts (records in, written, rejected by reason, ...),
    ``config`` the pipeline's options (never credentials) and ``properties`` kind-specific facts
    (for ``tokens``: tokenizer, its SHA-256, seq_len, pack mode, seed, vocab size, total tokens).
    ``tombstones`` (posts) lists every ``tombstones/`` file of this and earlier versions, each
    with the version that added it: the compliance state the dataset has applied.
    ``side_files`` (posts, ``--dedup-near``) lists, the same way, every ``minhash/`` and
    ``near_duplicates/`` file (``schemas.near_dup``).
    """

    version: int
    parent_version: int | None
    run_id: str
    created_at: str
    operation: str
    files: tuple[FileEntry, ...]
    rejects: tuple[FileEntry, ...] = ()
    sources: tuple[SourceEntry, ...] = ()
    tombstones: tuple[TombstoneEntry, ...] = ()
    side_files: tuple[TombstoneEntry, ...] = ()
    report: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    package_version: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> bytes:
        obj = asdict(self)
        if not obj["side_files"]:
            del obj["side_files"]  # the manifests of datasets that never used --dedup-near
        return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ManifestError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        if obj.get("format_version") != FORMAT_VERSION:
            raise ManifestError(
                f"{where}: format_version {obj.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        if obj.get("operation") not in OPERATIONS:
            raise ManifestError(
                f"{where}: operation {obj.get('operation')!r}, expected one of {OPERATIONS}"
            )
        try:
            return cls(
                version=int(obj["version"]),
                parent_version=obj.get("parent_version"),
                run_id=str(obj["run_id"]),
                created_at=str(obj["created_at"]),
                operation=obj["operation"],
                files=tuple(FileEntry.from_json(f, where) for f in obj["files"]),
                rejects=tuple(FileEntry.from_json(f, where) for f in obj.get("rejects", ())),
                tombstones=tuple(
                    TombstoneEntry.from_json(f, where) for f in obj.get("tombstones", ())
                ),
                side_files=tuple(
                    TombstoneEntry.from_json(f, where) for f in obj.get("side_files", ())
                ),
                sources=tuple(SourceEntry.from_json(s) for s in obj.get("sources", ())),
                report=dict(obj.get("report") or {}),
                config=dict(obj.get("config") or {}),
                config_hash=str(obj.get("config_hash", "")),
                package_version=str(obj.get("package_version", "")),
                properties=dict(obj.get("properties") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{where}: missing or malformed field {exc}") from None


@dataclass(frozen=True)
class DatasetInfo:
    """``dataset.json``: what kind of dataset this is and the schema it was created with.

    Written once, never modified. Data files have this schema or, written by a later
    shardsmith, the kind's schema with columns added since (``schemas.evolution``)."""

    kind: str
    created_at: str
    schema: pa.Schema
    format_version: int = FORMAT_VERSION

    @property
    def partitioning(self) -> list[str]:
        return ["dt"] if kind_spec(self.kind).partition_by else []

    def to_json(self) -> bytes:
        obj = {
            "kind": self.kind,
            "format_version": self.format_version,
            "created_at": self.created_at,
            "partitioning": self.partitioning,
            # Human-readable, for people and DuckDB users ...
            "columns": [
                {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.schema
            ],
            # ... and exact, for programs.
            "arrow_schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
        }
        return json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> DatasetInfo:
        try:
            obj = json.loads(data)
            kind = obj["kind"]
            kind_spec(kind)
            if obj.get("format_version") != FORMAT_VERSION:
                raise ManifestError(
                    f"{where}: format_version {obj.get('format_version')!r}, "
                    f"expected {FORMAT_VERSION}"
                )
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(obj["arrow_schema"])))
            return cls(kind=kind, created_at=obj["created_at"], schema=schema)
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError, pa.ArrowInvalid) as exc:
            raise ManifestError(f"{where}: not a shardsmith dataset.json ({exc})") from None
