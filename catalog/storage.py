"""One fsspec entry point for every dataset and source URL (local paths, file://, memory://, s3://...).

Storage options (credentials, endpoints) are passed alongside URLs and never written anywhere:
``redact_url`` removes credentials embedded in a URL before it is logged or stored.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

__all__ = ["is_local", "join", "open_url", "protocol", "redact_url", "to_url"]

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
