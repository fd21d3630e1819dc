"""``IngestSessions``: session specs -> one ``WindowPiece`` per window (rows, rejects, counts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa

from schemas import CLIPS
from transforms.fleet.session import FleetOptions, ingest_session
from transforms.progress import ProgressTarget, Reporter

__all__ = ["IngestSessions", "window_table"]


def window_table(row: dict) -> pa.Table:
    """One window's row as a table of exactly the clips schema."""
    return pa.Table.from_pylist([row], schema=CLIPS.schema)


class _SessionFn(beam.DoFn):
    def __init__(self, options, storage_options, skip_clip_ids, progress):
        self._options, self._storage_options = options, storage_options
        self._skip = skip_clip_ids
        self._progress = progress

    def setup(self):
        self._reporter = Reporter(self._progress)

    def teardown(self):
        self._reporter.close()

    def process(self, spec):
        reporter, key = self._reporter, spec.key
        reporter.start(key)
        size = spec.size
        read = 0
        for piece in ingest_session(
            spec, self._options, self._storage_options, skip_clip_ids=self._skip
        ):
            # Bytes in proportion to the session's time done: decoding reads the files
            # front to back. Once per window.
            at = int(size * piece.session_done)
            counts = {"bytes": max(0, at - read), "records": piece.tally.get("records_in", 0)}
            if piece.row is not None:
                counts["camera_s"] = piece.row["duration_s"] * len(piece.row["cameras"])
            reporter.add(key, **counts)
            read = max(read, at)
            yield piece
        reporter.done(key)


class IngestSessions(beam.PTransform):
    """Decode, align and sample each recording session (``SessionSpec``) into window pieces.

    Sessions are spread over the workers; inside one, each camera decodes in a thread of
    its own, window by window and at most two windows ahead, so memory stays bounded by a
    few windows whatever the session's length.

    Args:
        options: window, sample rate, size, JPEG quality, keyframes-only.
        storage_options: fsspec options for the sources.
        skip_clip_ids: windows already committed (not decoded again).
        progress: where to report each session's bytes, windows and camera-seconds
            (default: nowhere; see ``transforms.progress``).
    """

    def __init__(
        self,
        options: FleetOptions,
        *,
        storage_options: Mapping[str, Any] | None = None,
        skip_clip_ids: frozenset[str] = frozenset(),
        progress: ProgressTarget | None = None,
    ):
        super().__init__()
        self._fn = _SessionFn(
            options, dict(storage_options or {}), frozenset(skip_clip_ids), progress
        )

    def expand(self, specs):
        return specs | "Redistribute" >> beam.Reshuffle() | "Sessions" >> beam.ParDo(self._fn)
