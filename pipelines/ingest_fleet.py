"""``shardsmith ingest fleet``: recording sessions -> a ``clips`` dataset version (DESIGN.md §4).

discover sessions (both layouts) -> per session: probe each camera file, cut aligned windows
across cameras, decode only the sampled frames, resize (libswscale), JPEG, resample telemetry,
quality metrics -> write shards -> commit once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog import Dataset, new_run_id
from catalog.parquet import read_parquet
from schemas import SourceEntry
from schemas.errors import UserError
from transforms.fleet.discover import SessionSpec, discover_sessions
from transforms.fleet.session import FleetOptions
from transforms.fleet.tags import TagThresholds

__all__ = ["FleetPlan", "IngestFleetConfig", "build", "plan", "progress_plan", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestFleetConfig:
    """Everything that decides what an ingest-fleet run produces (stored in the manifest).

    Args:
        source: the root holding the sessions (any fsspec URL).
        dataset: the clips dataset to append to (created if absent).
        layout: ``auto`` (both), ``teslacam`` or ``generic``.
        window_s / fps / size / jpeg_quality / keyframes_only / raw_fps: see ``FleetOptions``.
        tag_thresholds: ``NAME=VALUE`` settings of the clips' tag thresholds
            (``transforms.fleet.tags.TagThresholds``; e.g. ``("hard_brake=-5",)``).
        incremental: skip sessions whose files a committed version already consumed.
        max_reject_rate: fail, committing nothing, above this fraction of rejected records.
        storage_options: fsspec options for source and dataset (never stored).
    """

    source: str
    dataset: str
    layout: str = "auto"
    window_s: float = 10.0
    fps: float = 2.0
    size: tuple[int, int] = (224, 224)
    jpeg_quality: int = 90
    keyframes_only: bool = False
    raw_fps: float | None = None
    tag_thresholds: tuple[str, ...] = ()
    incremental: bool = False
    max_reject_rate: float = 0.01
    target_file_bytes: int = 256 << 20
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.window_s <= 0 or self.fps <= 0:
            raise UserError(
                f"--window {self.window_s} / --fps {self.fps}: expected positive numbers"
            )
        if self.window_s * self.fps < 1:
            raise UserError(f"--window {self.window_s} at --fps {self.fps} samples no frame")
        w, h = self.size
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise UserError(f"--size {w}x{h}: expected 16 to 8192 pixels a side")
        if not 1 <= self.jpeg_quality <= 95:
            raise UserError(f"--jpeg-quality {self.jpeg_quality}: expected 1 to 95")
        if self.raw_fps is not None and not 0 < self.raw_fps <= 1000:
            raise UserError(f"--raw-fps {self.raw_fps}: expected more than 0, at most 1000")
        if not 0 <= self.max_reject_rate <= 1:
            raise UserError(f"--max-reject-rate {self.max_reject_rate}: expected 0 to 1")
        try:
            TagThresholds.parse(self.tag_thresholds)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def options(self) -> FleetOptions:
        return FleetOptions(
            self.window_s,
            self.fps,
            tuple(self.size),
            self.jpeg_quality,
            self.keyframes_only,
            self.raw_fps,
            TagThresholds.parse(self.tag_thresholds),
        )

    def manifest_config(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("storage_options")
        out["size"] = list(self.size)
        out["pipeline"] = "ingest_fleet"
        return out


@dataclass(frozen=True)
class FleetPlan:
    run_id: str
    sessions: list[SessionSpec]
    already_consumed: list[SessionSpec]
    sources: list[SourceEntry]
    base_version: int
    committed_clip_ids: frozenset[str]


def _committed_clip_ids(ds: Dataset, prefixes: set[str]) -> frozenset[str]:
    ids: set[str] = set()
    for entry in ds.files():
        column = read_parquet(ds.fs, ds.path(entry.path), ["clip_id"]).column("clip_id")
        column = column.to_pylist()
        ids.update(c for c in column if c.rsplit("/", 1)[0] in prefixes)
    return frozenset(ids)


def plan(config: IngestFleetConfig, run_id: str | None = None) -> FleetPlan:
    """Discover the sessions, drop those already consumed (``--incremental``)."""
    ds = Dataset.create(config.dataset, "clips", storage_options=config.storage_options)
    manifest = ds.manifest()
    sessions = discover_sessions(
        config.source, layout=config.layout, storage_options=config.storage_options
    )
    consumed: list[SessionSpec] = []
    if config.incremental and manifest is not None:
        seen = {(s.uri, s.size, s.mtime) for s in manifest.sources}
        fresh = []
        for spec in sessions:
            stamps = {(u, *spec.sizes[u]) for u in spec.files}
            (consumed if stamps <= seen else fresh).append(spec)
        sessions = fresh
    sources = sorted(
        (SourceEntry(u, *s.sizes[u]) for s in sessions for u in s.files), key=lambda e: e.uri
    )
    prefixes = {f"{s.vehicle_id or '-'}/{s.session_id}" for s in sessions}
    return FleetPlan(
        run_id=run_id or new_run_id(),
        sessions=sessions,
        already_consumed=consumed,
        sources=sources,
        base_version=manifest.version if manifest else 0,
        committed_clip_ids=(
            _committed_clip_ids(ds, prefixes) if manifest and sessions else frozenset()
        ),
    )


def build(pipeline, config: IngestFleetConfig, the_plan: FleetPlan, progress=None):
    """Wire the ingest-fleet pipeline onto ``pipeline``; returns the run report PCollection.

    ``progress``: the ``transforms.progress.ProgressTarget`` the decoding step reports to."""
    import apache_beam as beam

    from transforms import WriteShards
    from transforms.fleet import IngestSessions, StageWindows

    so = dict(config.storage_options)
    pieces = (
        pipeline
        # IngestSessions spreads the sessions over the workers (no second reshuffle here).
        | "Sessions" >> beam.Create(the_plan.sessions, reshuffle=False)
        | "IngestSessions"
        >> IngestSessions(
            config.options(),
            storage_options=so,
            skip_clip_ids=the_plan.committed_clip_ids,
            progress=progress,
        )
    )
    return {
        # Rows (JPEG frames) are staged by the worker that made them; only references move.
        "staged": pieces
        | "StageRows" >> StageWindows(config.dataset, run_id=the_plan.run_id, storage_options=so),
        "rejects": pieces | "Rejects" >> beam.FlatMap(lambda p: p.rejects),
        "tallies": pieces | "Counts" >> beam.Map(lambda p: dict(p.tally)),
    } | "WriteShards" >> WriteShards(
        config.dataset,
        "clips",
        run_id=the_plan.run_id,
        storage_options=so,
        sources=the_plan.sources,
        config=config.manifest_config(),
        base_version=the_plan.base_version,
        target_file_bytes=config.target_file_bytes,
        max_reject_rate=config.max_reject_rate,
    )


def run(config: IngestFleetConfig, options, *, run_id: str | None = None):
    """Plan and run one fleet ingest; returns the ``RunReport`` (``RunFailed`` if it committed
    nothing because of rejects). With nothing new to read, no pipeline runs."""
    from runners.execute import nothing_new, run_pipeline

    the_plan = plan(config, run_id)
    if not the_plan.sessions:
        consumed = len(the_plan.already_consumed)
        return nothing_new(config.dataset, "clips", the_plan.run_id, consumed, "sessions")
    log.info("ingesting %d sessions into %s", len(the_plan.sessions), config.dataset)
    return run_pipeline(
        lambda p, target: build(p, config, the_plan, target),
        options,
        dataset=config.dataset,
        run_id=the_plan.run_id,
        base_version=the_plan.base_version,
        storage_options=config.storage_options,
        input_bytes=sum(s.size or 0 for s in the_plan.sources),
        small_input_bytes=_in_process_below(the_plan.sessions),
        progress=progress_plan(the_plan),
    )


def progress_plan(the_plan: FleetPlan):
    """What the run's progress is measured against: every session's files and bytes
    (``IngestSessions`` reports under the session's key). Camera-seconds are counted as they
    are decoded; their total is not known before the files are probed."""
    from runners.progress import ProgressPlan

    sessions = {s.key: {"bytes": s.size, "files": len(s.files)} for s in the_plan.sessions}
    return ProgressPlan("ingest fleet", "bytes", sessions, counters=("records", "camera_s"))


def _in_process_below(sessions: list[SessionSpec]) -> int:
    """Input bytes below which the default local runner runs in this process."""
    if len(sessions) < (os.cpu_count() or 1):
        # A session's cameras decode in threads of their own (decode_ahead), so fewer
        # sessions than cores keep the cores busy here; worker processes would each pay
        # Beam's start-up (~1.5 s of CPU) and then wait, one of them on the whole session.
        return 1 << 62
    # Decoding costs more CPU per byte than parsing posts: worker processes pay off
    # sooner (16 MiB: ~15 camera-seconds of 1080p H.264).
    return 16 << 20
