"""Finding recording sessions in both layouts (DESIGN.md §4), at any fsspec URL.

* ``teslacam``: ``.../TeslaCam/{SavedClips,SentryClips,RecentClips}/<event>/<YYYY-MM-DD_HH-MM-SS>-<camera>.mp4``
  plus ``event.json``; a session is an event folder, each camera a sequence of segment files.
* ``generic``: ``<vehicle>/<session>/<camera>.<ext>`` plus ``telemetry.{csv,jsonl,parquet}``.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import fsspec

from catalog.storage import modified_stamp, open_url, redact_url, to_url
from schemas.errors import UserError

__all__ = ["VIDEO_SUFFIXES", "NotARegularFile", "SessionSpec", "discover_sessions", "open_source"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".ts", ".h264", ".264", ".hevc", ".265")
_TELEMETRY = ("telemetry.csv", "telemetry.jsonl", "telemetry.parquet")
_TESLA_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})-(.+)\.mp4$", re.IGNORECASE)
_NAME_TIMES = ("%Y-%m-%dT%H-%M-%SZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ", "%Y-%m-%d_%H-%M-%S")


@dataclass
class SessionSpec:
    """One recording session: its cameras' files (in time order) and sidecars, as URLs."""

    layout: str
    vehicle_id: str | None
    session_id: str
    cameras: dict[str, list[str]] = field(default_factory=dict)
    telemetry: str | None = None
    event: str | None = None
    # From the folder name, when it holds a time: a fallback for files without creation_time.
    name_time: datetime | None = None
    sizes: dict[str, tuple[int, str | None]] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        out = [f for files in self.cameras.values() for f in files]
        return out + [f for f in (self.telemetry, self.event) if f]

    @property
    def size(self) -> int:
        """Bytes of all the session's files."""
        return sum(self.sizes[u][0] for u in self.files if u in self.sizes)

    @property
    def key(self) -> str:
        return f"{self.vehicle_id or '-'}/{self.session_id}"


class NotARegularFile(OSError):
    """A source path that is a FIFO, a device or a directory: reading it could block forever."""


def open_source(url: str, storage_options: Mapping[str, Any]):
    """Open one file of a session for reading (binary); ``NotARegularFile`` before opening
    anything that is not a regular file."""
    source = fsspec.open(url, "rb", **storage_options)
    kind = source.fs.info(source.path).get("type")
    if kind != "file":
        raise NotARegularFile(f"not a regular file (type {kind})")
    return source.open()


def _name_time(name: str) -> datetime | None:
    for fmt in _NAME_TIMES:
        try:
            return datetime.strptime(name, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def discover_sessions(
    root: str, *, layout: str = "auto", storage_options: Mapping[str, Any] | None = None
) -> list[SessionSpec]:
    """Every session under ``root``, sorted by vehicle and session.

    ``layout="auto"`` finds both: folders under a ``TeslaCam`` directory are teslacam events,
    everything else is read as the generic layout. Names starting with ``_`` or ``.`` are
    ignored. A root with no session is a ``UserError``.
    """
    if layout not in ("auto", "teslacam", "generic"):
        raise UserError(f"--layout {layout!r}: expected auto, teslacam or generic")
    fs, base = open_url(root, storage_options)
    if not fs.exists(base):
        raise UserError(f"{redact_url(root)}: no such file or directory")
    infos = fs.find(base, detail=True) if fs.isdir(base) else {}
    sessions: dict[tuple, SessionSpec] = {}
    generic_files: dict[tuple, dict] = defaultdict(dict)
    for path, info in sorted(infos.items()):
        rel = path[len(base) :].strip("/")
        parts = rel.split("/")
        if info.get("type") == "directory" or any(p.startswith(("_", ".")) for p in parts):
            continue
        url = redact_url(to_url(fs, path))
        name = parts[-1]
        if "TeslaCam" in parts[:-1] and layout in ("auto", "teslacam"):
            at = parts.index("TeslaCam")
            if len(parts) - at != 4:  # TeslaCam/<folder>/<event>/<file>
                continue
            event = parts[-2]
            vehicle = parts[at - 1] if at > 0 else posixpath.basename(base)
            key = ("teslacam", vehicle, parts[at + 1], event)
            spec = sessions.setdefault(
                key, SessionSpec("teslacam", vehicle, event, name_time=_name_time(event))
            )
            m = _TESLA_FILE.match(name)
            if m:
                spec.cameras.setdefault(m.group(2), []).append(url)
            elif name == "event.json":
                spec.event = url
            else:
                continue
            spec.sizes[url] = (int(info.get("size") or 0), modified_stamp(info))
        elif layout in ("auto", "generic") and "TeslaCam" not in parts and len(parts) >= 3:
            vehicle, session = parts[-3], parts[-2]
            lower = name.lower()
            if lower.endswith(VIDEO_SUFFIXES) or lower in _TELEMETRY:
                generic_files[(vehicle, session)][name] = (url, info)
    for (vehicle, session), files in generic_files.items():
        spec = SessionSpec("generic", vehicle, session, name_time=_name_time(session))
        for name, (url, info) in sorted(files.items()):
            if name.lower() in _TELEMETRY:
                spec.telemetry = spec.telemetry or url
            else:
                spec.cameras[posixpath.splitext(name)[0]] = [url]
            spec.sizes[url] = (int(info.get("size") or 0), modified_stamp(info))
        if spec.cameras:
            sessions[("generic", vehicle, session)] = spec
    found = [s for s in sessions.values() if s.cameras]
    for s in found:
        for files in s.cameras.values():
            files.sort()  # teslacam segment names sort by time
    if not found:
        raise UserError(f"{redact_url(root)}: no recording sessions found (layout {layout})")
    return sorted(found, key=lambda s: (s.layout, s.vehicle_id or "", s.session_id))
