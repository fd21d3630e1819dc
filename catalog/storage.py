"""One fsspec entry point for every dataset and source URL (local paths, file://, memory://, s3://...).

Storage options (credentials, endpoints) are passed alongside URLs and never written anywhere:
``redact_url`` removes credentials embedded in a URL before it is logged or stored.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

__all__ = [
    "is_local",
    "join",
    "modified_at",
    "modified_stamp",
    "open_url",
    "protocol",
    "redact_url",
    "to_url",
]

_USERINFO = re.compile(r"^([a-zA-Z][\w+.-]*://)[^/@]*@")


def open_url(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[AbstractFileSystem, str]:
    """Return ``(filesystem, root path)`` for ``url``; plain paths are made absolute."""
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, path.rstrip("/") or "/"


def protocol(fs: AbstractFileSystem) -> str:
    """The filesystem's main protocol name: ``"file"``, ``"memory"``, ``"s3"``..."""
    proto = fs.protocol
    return proto if isinstance(proto, str) else proto[0]


def is_local(fs: AbstractFileSystem) -> bool:
    return protocol(fs) in ("file", "local")


def join(root: str, *parts: str) -> str:
    """Join path parts with ``/`` whatever the platform (object stores know no other separator)."""
    return posixpath.join(root, *parts)


def to_url(fs: AbstractFileSystem, path: str) -> str:
    """The full URL of ``path`` on ``fs`` (local paths stay plain paths)."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def redact_url(url: str) -> str:
    """Drop ``user:password@`` from a URL, so it can be logged or stored in a manifest."""
    return _USERINFO.sub(r"\1", url)


def modified_at(info: Mapping[str, Any]) -> datetime | None:
    """A file's modification time (UTC) from an fsspec ``info`` dict, or None.

    Each backend names and types it differently: local ``mtime`` (epoch seconds), S3
    ``LastModified`` (datetime), GCS ``updated`` (ISO string), memory ``created``.
    """
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, str):
            try:
                ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    return None


def modified_stamp(info: Mapping[str, Any]) -> str | None:
    """``modified_at`` as the ISO string stored in manifests for incremental runs."""
    ts = modified_at(info)
    return ts.astimezone(timezone.utc).isoformat() if ts else None
