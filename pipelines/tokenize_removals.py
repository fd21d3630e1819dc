"""Compliance removals reaching a ``tokens`` dataset: the first step of every ``tokenize``.

Before it tokenizes anything, ``shardsmith tokenize`` (plain or ``--incremental``) applies the
removals its posts inputs committed since the state its tokens dataset last applied
(``transforms.tokenize.removed_documents``): the live files whose ``sources`` name a removed
post are re-packed without it (``transforms.tokenize.repack``), written anew, and committed as
one ``delete`` version -- only those files are rewritten; the report counts the examples
re-packed and removed, and the tokens and spans that went. Every tokens version records the
posts version whose removals it holds (``properties["applied"]``), so removals are worked out
from the posts dataset's cumulative tombstones, never by comparing with an old posts version
that ``gc`` may have expired (author blocks are resolved against the applied posts version).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from catalog import Dataset, redact_url
from catalog.parquet import read_parquet
from schemas import Manifest
from schemas.errors import UserError
from transforms.tokenize.removed_documents import applied_versions, removed_documents
from transforms.tokenize.repack import RepackOptions, removed_spans

__all__ = ["RemovalPlan", "build", "held_documents", "plan_removals", "removal_run_id", "run"]

log = logging.getLogger(__name__)

_RUNNING_TOTALS = ("tokens", "examples", "documents")


@dataclass(frozen=True)
class RemovalPlan:
    """What the removal step will do: rewrite ``affected`` files of the tokens version
    ``base_version`` without the documents ``removed`` (dataset label -> ids), ``documents``
    of which it holds; ``applied`` is the state the tokens will then hold; ``skip`` are posts
    of an older version the run reads that were removed since (dataset label -> ids)."""

    run_id: str
    base_version: int
    applied: dict[str, int]
    removed: dict[str, frozenset[str]] = field(default_factory=dict)
    affected: tuple[str, ...] = ()
    documents: int = 0
    skip: dict[str, frozenset[str]] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    opts: RepackOptions | None = None


def removal_run_id(run_id: str) -> str:
    """The run id of the removal step of the tokenize run ``run_id`` (its own commit)."""
    return f"{run_id}-removals"


def _sources(out: Dataset, paths: Sequence[str]) -> Iterator[tuple[str, pa.ListArray]]:
    # Only the provenance column is read: a few percent of a tokens file.
    for path in paths:
        column = read_parquet(out.fs, out.path(path), ["sources"]).column("sources")
        yield path, column.combine_chunks()


def held_documents(out: Dataset, manifest: Manifest, label: str) -> set[str]:
    """The ids of the documents of ``label`` that the tokens version ``manifest`` holds."""
    held: set[str] = set()
    for _, sources in _sources(out, [f.path for f in manifest.files]):
        spans = sources.flatten()
        mine = pc.fill_null(pc.equal(spans.field("dataset"), label), False)
        held.update(spans.field("id").filter(mine).to_pylist())
    return held


def _stale(ds: Dataset, label: str, version: int, latest: int, threads: bool) -> frozenset:
    """The posts of ``version`` that ``ds`` removed by ``latest``: a run reading an older
    version leaves them out, so they never come back into the tokens."""
    if version >= latest:
        return frozenset()
    docs, _ = removed_documents(
        ds, label, since=version, upto=latest, threads=False, held=lambda: set()
    )
    if docs and threads:
        raise UserError(
            f"tokenize: {label} version {version} holds posts removed by version {latest} "
            f"(compliance); with --threads read its latest version"
        )
    return frozenset(docs)


def plan_removals(
    out: Dataset,
    manifest: Manifest | None,
    inputs: Sequence[tuple[Dataset, int]],
    run_id: str,
    *,
    threads: bool = False,
) -> RemovalPlan:
    """Work out the removals the posts ``inputs`` committed, up to their latest versions, since
    the tokens version ``manifest`` applied, and the live files they touch. ``inputs`` are at
    the versions the run reads (``threads``: whether it renders reply threads); a version older
    than the latest gets the posts removed since as ``skip``."""
    props = dict(manifest.properties) if manifest else {}
    applied = applied_versions(props)
    new_applied = dict(applied)
    removed: dict[str, frozenset[str]] = {}
    skip: dict[str, frozenset[str]] = {}
    found: dict[str, int] = {}
    for ds, version in inputs:
        if ds.kind != "posts":
            continue
        label = redact_url(ds.url)
        latest = ds.latest_version()
        skip[label] = _stale(ds, label, version, latest, threads)
        since = applied.get(label, 0)
        new_applied[label] = max(since, latest)
        if manifest is None or since >= latest:
            continue
        docs, counts = removed_documents(
            ds,
            label,
            since=since,
            upto=latest,
            threads=bool(props.get("threads")),
            held=lambda label=label: held_documents(out, manifest, label),
        )
        for key, n in counts.items():
            found[key] = found.get(key, 0) + n
        if docs:
            removed[label] = frozenset(docs)
    the_plan = RemovalPlan(
        run_id=removal_run_id(run_id),
        base_version=manifest.version if manifest else 0,
        applied=new_applied,
        removed=removed,
        skip=skip,
        found=found,
    )
    if not removed:
        return the_plan
    affected, documents = [], set()
    for path, sources in _sources(out, [f.path for f in manifest.files]):
        hit, _ = removed_spans(sources, removed)
        if hit.any():
            affected.append(path)
            spans = sources.flatten().filter(pa.array(hit))
            documents |= set(
                zip(spans.field("dataset").to_pylist(), spans.field("id").to_pylist(), strict=True)
            )
    properties = {**props, "applied": new_applied}
    return RemovalPlan(
        run_id=the_plan.run_id,
        base_version=the_plan.base_version,
        applied=new_applied,
        removed=removed,
        affected=tuple(affected),
        documents=len(documents),
        skip=skip,
        found=found,
        properties=properties,
        opts=RepackOptions(
            seed=int(props.get("seed", 0)),
            seq_len=int(props["seq_len"]),
            mode=str(props.get("pack", "concat")),
        ),
    )


def build(pipeline, dataset: str, the_plan: RemovalPlan, *, storage_options, target_file_bytes):
    """Wire the removal run onto ``pipeline``; returns the run report PCollection."""
    import apache_beam as beam

    from transforms import WriteShards
    from transforms.tokenize.repack_files import RepackFiles

    so = dict(storage_options)
    repacked = (
        pipeline
        | "Affected" >> beam.Create(list(enumerate(the_plan.affected)))
        | "RepackFiles"
        >> RepackFiles(
            dataset,
            run_id=the_plan.run_id,
            files=len(the_plan.affected),
            removed=the_plan.removed,
            opts=the_plan.opts,
            storage_options=so,
            target_file_bytes=target_file_bytes,
        )
    )
    # Distinct documents: one can span two files of a shard, so files cannot count them.
    documents = pipeline | "Documents" >> beam.Create([the_plan.documents])
    found = {f"info:removals_{k}": v for k, v in the_plan.found.items() if v}
    return {
        "files": repacked | "Files" >> beam.FlatMap(lambda r: r.files),
        "remove": repacked | "Replaced" >> beam.Map(lambda r: r.path),
        "tallies": (
            repacked | "Counts" >> beam.Map(lambda r: r.tally),
            documents
            | "DocumentCount" >> beam.Map(lambda n: {"info:documents_removed": n, **found}),
        )
        | "AllCounts" >> beam.Flatten(),
        "stats": (
            repacked | "Stats" >> beam.Map(lambda r: r.stats),
            documents | "DocumentStats" >> beam.Map(lambda n: {"documents": -n}),
        )
        | "AllStats" >> beam.Flatten(),
    } | "WriteShards" >> WriteShards(
        dataset,
        "tokens",
        run_id=the_plan.run_id,
        storage_options=so,
        operation="delete",
        config={
            "pipeline": "tokenize-removals",
            "applied": the_plan.applied,
            "removed": {k: len(v) for k, v in sorted(the_plan.removed.items())},
        },
        properties=the_plan.properties,
        base_version=the_plan.base_version,
        running_totals=_RUNNING_TOTALS,
    )


def run(dataset: str, the_plan: RemovalPlan, options, *, storage_options, target_file_bytes):
    """Rewrite the plan's affected files and commit them as a ``delete`` version; its report."""
    from runners.execute import run_pipeline

    log.info(
        "applying compliance removals to %s: %d documents in %d files",
        redact_url(dataset),
        the_plan.documents,
        len(the_plan.affected),
    )
    ds = Dataset.open(dataset, storage_options=storage_options)
    size = sum(f.bytes for f in ds.files(the_plan.base_version) if f.path in set(the_plan.affected))
    return run_pipeline(
        lambda p: build(
            p,
            dataset,
            the_plan,
            storage_options=storage_options,
            target_file_bytes=target_file_bytes,
        ),
        options,
        dataset=dataset,
        run_id=the_plan.run_id,
        base_version=the_plan.base_version,
        storage_options=storage_options,
        input_bytes=size,
    )
