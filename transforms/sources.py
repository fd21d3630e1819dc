"""Finding the source files of a run: files, directories or globs at any fsspec URL."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from catalog.storage import modified_stamp, open_url, redact_url, to_url
from schemas import SourceEntry
from schemas.errors import UserError

__all__ = ["list_sources"]


def _hidden(path: str) -> bool:
    return posixpath.basename(path).startswith(("_", "."))


def list_sources(
    patterns: Sequence[str],
    *,
    suffixes: Iterable[str],
    storage_options: Mapping[str, Any] | None = None,
) -> list[SourceEntry]:
    """Every source file named by ``patterns``, sorted by URI, with size and modification stamp.

    A pattern is a file (taken whatever its name), a directory (searched recursively) or a glob;
    in directories and globs only names ending in one of ``suffixes`` count, and names starting
    with ``_`` or ``.`` (``_SAMPLE.json``, ``.DS_Store``) are ignored. A pattern that matches
    nothing is a ``UserError``.
    """
    suffixes = tuple(suffixes)
    found: dict[str, SourceEntry] = {}
    for pattern in patterns:
        fs, path = open_url(pattern, storage_options)
        if any(c in pattern for c in "*?["):
            infos = {p: fs.info(p) for p in fs.glob(path)}
            explicit = False
        elif fs.isdir(path):
            infos = fs.find(path, detail=True)
            explicit = False
        elif fs.exists(path):
            infos = {path: fs.info(path)}
            explicit = True
        else:
            raise UserError(f"{redact_url(pattern)}: no such file or directory")
        matched = 0
        for p, info in sorted(infos.items()):
            if info.get("type") == "directory":
                continue
            if not explicit and (_hidden(p) or not p.lower().endswith(suffixes)):
                continue
            uri = redact_url(to_url(fs, p))
            etag = info.get("ETag") or info.get("etag")
            found[uri] = SourceEntry(
                uri,
                int(info.get("size") or 0),
                modified_stamp(info),
                etag.strip('"') if isinstance(etag, str) else None,
            )
            matched += 1
        if not matched:
            raise UserError(
                f"{redact_url(pattern)}: no source files (expected names ending in "
                f"{', '.join(suffixes)})"
            )
    return [found[k] for k in sorted(found)]
