"""``shardsmith ingest posts``: post streams -> a ``posts`` dataset version (DESIGN.md §4).

match sources -> read lines -> parse (pages expanded, includes joined, non-posts skipped,
compliance events collected, malformed lines rejected) -> the run's compliance state (the
dataset's tombstones plus the run's events; what changed is written as the version's
tombstones file) -> resolve duplicates, edits and compliance removals (against this run and
the dataset) -> with ``--dedup-near``, near-duplicates (``transforms.posts.dedup_near``) -> rewrite committed files that lose rows or gain marks -> write shards -> commit
once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog import Dataset, new_run_id
from schemas import FileEntry, SourceEntry
from schemas.errors import UserError
from transforms.posts.parse import ParseOptions
from transforms.sources import list_sources

__all__ = [
    "SUFFIXES",
    "IngestPostsConfig",
    "Plan",
    "build",
    "plan",
    "progress_plan",
    "run",
    "writers_per_day",
]

log = logging.getLogger(__name__)

SUFFIXES = tuple(
    base + comp for base in (".jsonl", ".ndjson", ".json") for comp in ("", ".gz", ".zst", ".zstd")
)
_BUCKET_BYTES = 256 << 20
# Input bytes per writer of a day's posts (see ``writers_per_day``).
_WRITER_INPUT_BYTES = 2 << 30


@dataclass(frozen=True)
class IngestPostsConfig:
    """Everything that decides what an ingest-posts run produces (stored in the manifest).

    Args:
        sources: files, directories or globs (any fsspec URL); the ids of batch compliance
            lines in them are post ids.
        user_compliance: batch compliance files (or directories, globs) whose ids are user
            ids (X's user compliance job results); stream events are recognized in both.
        dataset: the posts dataset to append to (created if absent).
        dedup_text: also drop posts whose normalized text was already seen.
        dedup_near: also drop posts whose text is a near-duplicate (estimated Jaccard of
            character 5-grams at least this, in (0, 1]) of an earlier or a committed post's
            (``transforms.posts.near_dup``); None: off.
        scrub_pii: replace e-mail addresses and phone numbers with ``<email>`` / ``<phone>``.
        langs: keep only these languages (empty: all).
        min_chars: drop posts with fewer characters of cleaned text.
        drop_reposts: drop reposts.
        incremental: skip sources a committed version already consumed (same URI, size, stamp).
        max_line_bytes: reject longer lines.
        max_reject_rate: fail, committing nothing, above this fraction of rejected records.
        target_file_bytes: size of the Parquet files written.
        storage_options: fsspec options for sources and dataset (never stored).
    """

    sources: tuple[str, ...]
    dataset: str
    dedup_text: bool = False
    dedup_near: float | None = None
    scrub_pii: bool = False
    langs: tuple[str, ...] = ()
    min_chars: int = 0
    drop_reposts: bool = False
    incremental: bool = False
    max_line_bytes: int = 16 << 20
    max_reject_rate: float = 0.01
    target_file_bytes: int = 256 << 20
    user_compliance: tuple[str, ...] = ()
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.sources and not self.user_compliance:
            raise UserError("ingest posts: expected at least one SRC or --user-compliance FILE")
        if self.dedup_near is not None and not 0 < self.dedup_near <= 1:
            raise UserError(
                f"--dedup-near {self.dedup_near}: expected a similarity in (0, 1], e.g. 0.8"
            )
        if self.min_chars < 0:
            raise UserError(f"--min-chars {self.min_chars}: expected >= 0")
        if self.max_line_bytes < 1:
            raise UserError(f"--max-line-bytes {self.max_line_bytes}: expected a positive size")
        if not 0 <= self.max_reject_rate <= 1:
            raise UserError(f"--max-reject-rate {self.max_reject_rate}: expected 0 to 1")

    def manifest_config(self) -> dict[str, Any]:
        """The config as stored in the manifest: no storage options, ever."""
        out = asdict(self)
        out.pop("storage_options")
        out["sources"] = list(self.sources)
        out["langs"] = list(self.langs)
        out["user_compliance"] = list(self.user_compliance)
        if self.dedup_near is None:
            del out["dedup_near"]  # the config (and its hash) of runs without it is unchanged
        out["pipeline"] = "ingest_posts"
        return out

    def parse_options(self) -> ParseOptions:
        return ParseOptions(
            scrub_pii=self.scrub_pii,
            langs=frozenset(self.langs),
            min_chars=self.min_chars,
            drop_reposts=self.drop_reposts,
        )


@dataclass(frozen=True)
class Plan:
    """What the run will read, decided before the pipeline starts."""

    run_id: str
    sources: list[SourceEntry]
    already_consumed: list[SourceEntry]
    base_version: int
    base_files: list[str]
    buckets: int
    user_sources: list[SourceEntry] = field(default_factory=list)
    tombstones: list[FileEntry] = field(default_factory=list)
    minhash_files: list[str] = field(default_factory=list)


def plan(config: IngestPostsConfig, run_id: str | None = None) -> Plan:
    """List the sources, drop those already consumed (``--incremental``), pin the base version."""
    ds = Dataset.create(config.dataset, "posts", storage_options=config.storage_options)
    manifest = ds.manifest()
    so = config.storage_options
    found = list_sources(config.sources, suffixes=SUFFIXES, storage_options=so)
    users = list_sources(config.user_compliance, suffixes=SUFFIXES, storage_options=so)
    # A file named both ways would be read twice: as user ids it is only the compliance file.
    found = [s for s in found if s.uri not in {u.uri for u in users}]
    consumed: list[SourceEntry] = []
    if config.incremental and manifest is not None:
        seen = {(s.uri, s.size, s.mtime) for s in manifest.sources}
        consumed = [s for s in (*found, *users) if (s.uri, s.size, s.mtime) in seen]
        found = [s for s in found if (s.uri, s.size, s.mtime) not in seen]
        users = [s for s in users if (s.uri, s.size, s.mtime) not in seen]
    total = sum(s.size or 0 for s in found)
    minhash_files = [
        e.path for e in (manifest.side_files if manifest else ()) if e.path.startswith("minhash/")
    ]
    if config.dedup_near is not None and minhash_files:
        from transforms.posts.dedup_near import check_signature_files

        check_signature_files(ds.fs, ds.root, minhash_files)
    return Plan(
        run_id=run_id or new_run_id(),
        sources=found,
        user_sources=users,
        already_consumed=consumed,
        base_version=manifest.version if manifest else 0,
        base_files=[f.path for f in manifest.files] if manifest else [],
        tombstones=list(manifest.tombstones) if manifest else [],
        minhash_files=minhash_files,
        buckets=max(8, min(4096, total // _BUCKET_BYTES + 1)),
    )


def build(pipeline, config: IngestPostsConfig, the_plan: Plan, progress=None):
    """Wire the ingest-posts pipeline onto ``pipeline``; returns the run report PCollection.

    ``progress``: the ``transforms.progress.ProgressTarget`` the parsing step reports to."""
    import apache_beam as beam

    from transforms import WriteShards
    from transforms.posts import USER_IDS, ParsePosts, ResolvePosts, StagePosts
    from transforms.posts.dedup_near import DedupNear
    from transforms.posts.removals import apply_marks
    from transforms.posts.tombstones import record_run, run_removals
    from transforms.rewrite_files import RewriteWithout

    so = dict(config.storage_options)
    # Parsed rows go straight to the run's staging area; only keys and references to staged
    # rows move between the steps (see catalog.staging).
    chunks = (
        pipeline
        # ParsePosts spreads the sources over the workers: Create's own reshuffle would be a
        # second one, a stage of every run's start for nothing.
        | "Sources"
        >> beam.Create(
            [s.uri for s in the_plan.sources] + [(s.uri, USER_IDS) for s in the_plan.user_sources],
            reshuffle=False,
        )
        | "ParsePosts"
        >> ParsePosts(
            config.parse_options(),
            storage_options=so,
            max_line_bytes=config.max_line_bytes,
            progress=progress,
        )
        | "StagePosts"
        >> StagePosts(
            config.dataset,
            run_id=the_plan.run_id,
            buckets=the_plan.buckets,
            storage_options=so,
            minhash=config.dedup_near is not None,
        )
    )
    keys = chunks | "Keys" >> beam.FlatMap(lambda c: [c.keys] if c.keys else [])
    deletes = chunks | "Deletes" >> beam.FlatMap(lambda c: c.deletes)
    events = chunks | "Events" >> beam.FlatMap(lambda c: c.events)
    # The run's compliance state: every event of the run, in time order, on top of the
    # dataset's (one small element every step that needs it reads as a side input).
    states = (
        pipeline
        | "RemovalsTrigger" >> beam.Create([None])
        | "Removals"
        >> beam.Map(
            lambda _, d, e: run_removals(
                d, e, url=config.dataset, storage_options=so, entries=the_plan.tombstones
            ),
            beam.pvalue.AsList(deletes),
            beam.pvalue.AsList(events),
        )
    )
    removals = states | "After" >> beam.Map(lambda s: s[1])
    tombstones = states | "WriteTombstones" >> beam.FlatMap(
        record_run, url=config.dataset, storage_options=so, run_id=the_plan.run_id
    )
    resolved = {"keys": keys, "removals": removals} | "ResolvePosts" >> ResolvePosts(
        config.dataset,
        files=the_plan.base_files,
        buckets=the_plan.buckets,
        storage_options=so,
        dedup_text=config.dedup_text,
        dedup_near=None
        if config.dedup_near is None
        else DedupNear(
            config.dataset,
            threshold=config.dedup_near,
            run_id=the_plan.run_id,
            committed=the_plan.minhash_files,
            buckets=the_plan.buckets,
            storage_options=so,
        ),
    )
    rewritten = resolved["remove"] | "RewriteCommitted" >> RewriteWithout(
        config.dataset,
        "posts",
        storage_options=so,
        amend=apply_marks,
        amend_with=[beam.pvalue.AsSingleton(removals)],
    )
    tallies = (
        chunks | "ParseCounts" >> beam.Map(lambda c: c.tally),
        resolved["tallies"],
        rewritten | "RewriteCounts" >> beam.Map(lambda r: {"carried": r.kept.num_rows}),
    ) | "AllCounts" >> beam.Flatten()
    return {
        "positions": resolved["positions"],
        "data": (
            rewritten | "RewrittenRows" >> beam.Map(lambda r: r.kept),
            resolved["marked"],
        )
        | "AllRows" >> beam.Flatten(),
        "rejects": chunks | "Rejects" >> beam.FlatMap(lambda c: c.rejects),
        "tallies": tallies,
        "remove": rewritten | "Replaced" >> beam.Map(lambda r: r.path),
        "tombstones": tombstones,
        "side_files": resolved["side_files"],
    } | "WriteShards" >> WriteShards(
        config.dataset,
        "posts",
        run_id=the_plan.run_id,
        storage_options=so,
        sources=[*the_plan.sources, *the_plan.user_sources],
        config=config.manifest_config(),
        base_version=the_plan.base_version,
        target_file_bytes=config.target_file_bytes,
        writers_per_partition=writers_per_day(pipeline.options, the_plan),
        max_reject_rate=config.max_reject_rate,
    )


def writers_per_day(options, the_plan: Plan) -> int:
    """How many writers write each ``dt`` partition: one per local worker, but no more than
    one per ``_WRITER_INPUT_BYTES`` of input, and one on other runners.

    A stream's posts mostly fall on one or two days. With one writer a day, the write step of a
    big run is one worker writing while the others wait (at 1 M lines on 2 cores, 3.5 s of a
    31 s run). Each writer writes files of its own, so a small run keeps one file a day."""
    from runners.options import local_workers

    size = sum(s.size or 0 for s in (*the_plan.sources, *the_plan.user_sources))
    return max(1, min(local_workers(options) or 1, size // _WRITER_INPUT_BYTES))


def run(config: IngestPostsConfig, options, *, run_id: str | None = None):
    """Plan and run one ingest; returns the ``RunReport`` (``RunFailed`` if it committed
    nothing because of rejects). With nothing new to read, no pipeline runs."""
    from runners.execute import nothing_new, run_pipeline

    the_plan = plan(config, run_id)
    if not the_plan.sources and not the_plan.user_sources:
        consumed = len(the_plan.already_consumed)
        return nothing_new(config.dataset, "posts", the_plan.run_id, consumed, "sources")
    log.info(
        "ingesting %d sources (%d user compliance files) into %s",
        len(the_plan.sources) + len(the_plan.user_sources),
        len(the_plan.user_sources),
        config.dataset,
    )
    return run_pipeline(
        lambda p, target: build(p, config, the_plan, target),
        options,
        dataset=config.dataset,
        run_id=the_plan.run_id,
        base_version=the_plan.base_version,
        storage_options=config.storage_options,
        input_bytes=sum(s.size or 0 for s in (*the_plan.sources, *the_plan.user_sources)),
        progress=progress_plan(the_plan),
    )


def progress_plan(the_plan: Plan):
    """What the run's progress is measured against: every source's bytes (``ParsePosts``
    reports under the source's URI)."""
    from runners.progress import ProgressPlan

    sources = {s.uri: {"bytes": s.size or 0, "files": 1} for s in the_plan.sources}
    sources.update({s.uri: {"bytes": s.size or 0, "files": 1} for s in the_plan.user_sources})
    return ProgressPlan("ingest posts", "bytes", sources, counters=("records",))
