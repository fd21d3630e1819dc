"""``StageWindows``: window pieces -> their clip rows in the run's staging area, by reference.

A window's row carries its JPEG frames (megabytes). Moved through Beam's data plane to the
writer, every row is serialized, copied into the runner -- which holds all of a run's shuffled
bytes in memory on the local runner -- and out again; at scale that is the failure the posts
pipeline met (records lost in flight, a runner of many GB). As posts are, each row is written
once to ``_staging/<run_id>/`` by the worker that made it, and only a ``StagedRows`` reference
(a few bytes) goes on to ``WriteShards``, which reads the rows back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from catalog.staging import StagedRows, staging_dir, write_staged
from catalog.storage import open_url
from schemas import CLIPS
from transforms.fleet.ingest_sessions import window_table
from transforms.partitioning import split_partitions

__all__ = ["StageWindows"]


def _staged_name(run_id: str, row: dict) -> str:
    # Named by window start, then clip id: a retried window rewrites its own file, and the
    # writer (which reads references in name order) meets windows in time order.
    digest = hashlib.blake2b(row["clip_id"].encode("utf-8"), digest_size=8).hexdigest()
    return f"{staging_dir(run_id)}/clip-{int(row['start_time']):020d}-{digest}.arrow"


class _StageWindowFn(beam.DoFn):
    def __init__(self, url, storage_options, run_id):
        self._url, self._storage_options, self._run_id = url, storage_options, run_id

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, piece):
        if not piece.row:
            return
        parts = list(split_partitions(window_table(piece.row), CLIPS))
        path = _staged_name(self._run_id, piece.row)
        write_staged(self._fs, self._root, path, [rows for _, rows in parts])
        for batch, (dt, _) in enumerate(parts):
            yield StagedRows(path, batch, None, dt)


class StageWindows(beam.PTransform):
    """``WindowPiece`` s -> ``StagedRows`` of their clip rows, staged in ``dataset``'s staging
    area of ``run_id`` (for ``WriteShards``'s ``staged`` input).

    Example::

        staged = pieces | StageWindows("/data/clips", run_id=run_id)
    """

    def __init__(
        self, dataset: str, *, run_id: str, storage_options: Mapping[str, Any] | None = None
    ):
        super().__init__()
        self._fn = _StageWindowFn(dataset, dict(storage_options or {}), run_id)

    def expand(self, pieces):
        return pieces | "Stage" >> beam.ParDo(self._fn)
