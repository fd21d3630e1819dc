"""``shardsmith tokenize``: posts/clips versions -> a globally shuffled, packed ``tokens`` version.

read (a pinned version of each input) -> render documents (posts, reply threads, clip windows)
-> tokenize in batches (+ EOS, patch placeholders) -> shuffle key = hash(seed, document id),
shard = key mod shards -> group by shard, sort by key -> pack to seq_len -> write -> commit once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog import Dataset, DatasetError, new_run_id, redact_url
from catalog.parquet import read_parquet
from pipelines.tokenize_removals import RemovalPlan, held_documents, plan_removals
from schemas import SourceEntry
from schemas.errors import UserError
from transforms.tokenize.pack import PACK_MODES, PackOptions
from transforms.tokenize.tokenize_documents import DocumentOptions, InputVersion
from transforms.tokenize.tokenizer import TokenizerSpec, load_tokenizer

__all__ = ["Plan", "TokenizeConfig", "build", "plan", "progress_plan", "run"]

log = logging.getLogger(__name__)

# Auto shard count: about this many bytes of examples per shard. Clip rows hold JPEG frames that
# become raw patches (~10x larger); post rows are mostly text and ids (~1x).
_SHARD_BYTES = 256 << 20
_EXPANSION = {"posts": 1, "clips": 10}
_RUNNING_TOTALS = ("tokens", "examples", "documents")


@dataclass(frozen=True)
class TokenizeConfig:
    """Everything that decides what a tokenize run produces (stored in the manifest).

    Args:
        inputs: ``posts`` or ``clips`` dataset URLs (their latest versions, or ``version``).
        dataset: the ``tokens`` dataset to append to (created if absent).
        tokenizer: a Hugging Face hub name, a directory or a ``tokenizer.json`` (default: the
            small tokenizer shipped in the package).
        seq_len: tokens per example.
        shards: output shards (default: about one per 256 MiB of examples).
        seed: the shuffle seed; the same inputs and seed give the same shards, byte for byte.
        pack: ``concat`` (documents back to back, cut at seq_len) or ``pad`` (one per example).
        threads: a reply thread (posts sharing ``conversation_id``) is one document.
        patch: patch size in pixels of video frames.
        version: read this version of the (single) input instead of its latest.
        incremental: skip input files a committed version already tokenized.
        target_file_bytes: size of the Parquet files written.
        storage_options: fsspec options for inputs and output (never stored).
    """

    inputs: tuple[str, ...]
    dataset: str
    tokenizer: str | None = None
    seq_len: int = 2048
    shards: int | None = None
    seed: int = 0
    pack: str = "concat"
    threads: bool = False
    patch: int = 16
    version: int | None = None
    incremental: bool = False
    target_file_bytes: int = 256 << 20
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.inputs:
            raise UserError("tokenize: expected at least one DATASET")
        if len(set(self.inputs)) != len(self.inputs):
            raise UserError("tokenize: a DATASET is given twice; expected each input once")
        if not 8 <= self.seq_len <= 1 << 20:
            raise UserError(f"--seq-len {self.seq_len}: expected 8 to 1048576 tokens")
        if self.shards is not None and not 1 <= self.shards <= 100_000:
            raise UserError(f"--shards {self.shards}: expected 1 to 100000")
        if self.pack not in PACK_MODES:
            raise UserError(f"--pack {self.pack}: expected one of {', '.join(PACK_MODES)}")
        if not 2 <= self.patch <= 256:
            raise UserError(f"--patch {self.patch}: expected 2 to 256 pixels")
        if self.version is not None and len(self.inputs) != 1:
            raise UserError("--version: only with a single input DATASET")
        if not -(1 << 63) <= self.seed < 1 << 63:
            raise UserError(f"--seed {self.seed}: expected a 64-bit integer")

    def manifest_config(self, tokenizer: TokenizerSpec) -> dict[str, Any]:
        """The config as stored in the manifest: URLs without credentials, no storage options."""
        return {
            "pipeline": "tokenize",
            "inputs": [redact_url(u) for u in self.inputs],
            "tokenizer": tokenizer.name,
            "seq_len": self.seq_len,
            "shards": self.shards,
            "seed": self.seed,
            "pack": self.pack,
            "threads": self.threads,
            "patch": self.patch,
            "version": self.version,
            "incremental": self.incremental,
            "target_file_bytes": self.target_file_bytes,
        }


@dataclass(frozen=True)
class Plan:
    """What the run will read and how, decided before the pipeline starts."""

    run_id: str
    inputs: tuple[InputVersion, ...]
    sources: list[SourceEntry]
    already_consumed: int
    tokenizer: TokenizerSpec
    shards: int
    base_version: int
    removals: RemovalPlan | None = None
    read: dict[str, int] = field(default_factory=dict)
    # Rows of each input file read (by ``sources`` URI), from the inputs' manifests.
    rows: dict[str, int] = field(default_factory=dict)

    def properties(self, config: TokenizeConfig) -> dict[str, Any]:
        """The ``tokens`` facts of the manifest (DESIGN.md §2)."""
        return {
            "tokenizer": self.tokenizer.manifest_entry(),
            "seq_len": config.seq_len,
            "pack": config.pack,
            "seed": config.seed,
            "shards": self.shards,
            "patch_size": config.patch,
            "threads": config.threads,
            "vocab_size": self.tokenizer.vocab_size,
            "inputs": [
                {"dataset": i.label, "kind": i.kind, "version": i.version} for i in self.inputs
            ],
            # The posts version whose compliance removals the tokens hold, per posts dataset,
            # and the latest version of each input whose files they read.
            "applied": self.removals.applied if self.removals else {},
            "read": {**self.read, **{i.label: i.version for i in self.inputs}},
        }


def _open_input(url: str, config: TokenizeConfig) -> tuple[Dataset, int]:
    try:
        ds = Dataset.open(url, storage_options=config.storage_options)
    except DatasetError as e:
        raise UserError(f"tokenize: {e}") from None
    if ds.kind not in ("posts", "clips"):
        raise UserError(
            f"tokenize: {redact_url(url)} is a {ds.kind} dataset; expected posts or clips"
        )
    version = config.version or ds.latest_version()
    if version == 0 or ds.manifest(version) is None:
        raise UserError(f"tokenize: {redact_url(url)} has no version {version or ''}".strip())
    return ds, version


def _check_compatible(manifest, config: TokenizeConfig, tokenizer: TokenizerSpec) -> None:
    # Examples of one dataset must be interchangeable: same tokenizer, length and packing.
    props = manifest.properties
    had = props.get("tokenizer", {})
    if had.get("sha256") not in (None, tokenizer.sha256):
        raise UserError(
            f"tokenize: {redact_url(config.dataset)} was tokenized with {had.get('name')} "
            f"(sha256 {had['sha256'][:12]}), not {tokenizer.name} (sha256 "
            f"{tokenizer.sha256[:12]}); use the same tokenizer or another --to dataset"
        )
    for key, value in (("seq_len", config.seq_len), ("pack", config.pack)):
        if props.get(key) not in (None, value):
            raise UserError(
                f"tokenize: {redact_url(config.dataset)} has {key} {props[key]}, not {value}; "
                f"use the same --{key.replace('_', '-')} or another --to dataset"
            )


def plan(config: TokenizeConfig, run_id: str | None = None) -> Plan:
    """Pin the inputs' versions, load the tokenizer, check the output, choose the shard count."""
    opened = [(url, *_open_input(url, config)) for url in config.inputs]
    tokenizer = load_tokenizer(config.tokenizer)
    out = Dataset.create(config.dataset, "tokens", storage_options=config.storage_options)
    manifest = out.manifest()
    if manifest is not None:
        _check_compatible(manifest, config, tokenizer)
    consumed = {s.uri for s in manifest.sources} if manifest and config.incremental else set()
    inputs, sources, skipped, est, rows = [], [], 0, 0, {}
    for url, ds, version in opened:
        label = redact_url(ds.url)
        files = []
        for f in ds.files(version):
            entry = SourceEntry(uri=f"{label}/{f.path}", size=f.bytes, etag=f.checksum)
            if entry.uri in consumed:
                skipped += 1
                continue
            files.append(f.path)
            sources.append(entry)
            rows[entry.uri] = f.rows
            est += f.bytes * _EXPANSION[ds.kind]
        inputs.append(InputVersion(url, label, ds.kind, version, ds.info.schema, tuple(files)))
    shards = config.shards or max(1, min(4096, -(-est // _SHARD_BYTES)))
    run_id = run_id or new_run_id()
    removals = plan_removals(
        out, manifest, [(ds, v) for _, ds, v in opened], run_id, threads=config.threads
    )
    inputs = [
        _skip(spec, ds, out, manifest, removals, config)
        for spec, (_, ds, _) in zip(inputs, opened, strict=True)
    ]
    return Plan(
        run_id=run_id,
        inputs=tuple(inputs),
        sources=sources,
        already_consumed=skipped,
        tokenizer=tokenizer,
        shards=shards,
        base_version=manifest.version if manifest else 0,
        removals=removals,
        read=_read_versions(manifest),
        rows=rows,
    )


def _skip(
    spec: InputVersion, ds: Dataset, out: Dataset, manifest, removals: RemovalPlan, config
) -> InputVersion:
    """``spec`` told which posts of its files to leave out: those removed since the version it
    reads, and (``--incremental``) those the tokens hold already.

    An ingest that rewrites a committed file (a compliance removal, a newer edit, an
    overwrite) writes the rows it keeps into new files, mixed with new posts: an incremental
    run reads those files as new, and would tokenize the kept rows a second time."""
    if spec.kind != "posts" or not spec.files:
        return spec
    removed = removals.skip.get(spec.label, frozenset())
    held: set[str] = set()
    since = _read_versions(manifest).get(spec.label, 0)
    incremental = config.incremental and not config.threads and manifest is not None
    if incremental and _rewrote(ds, since, spec.version):
        held = held_documents(out, manifest, spec.label) - removals.removed.get(spec.label, set())
        if held:
            new = set()
            for path in spec.files:
                column = read_parquet(ds.fs, ds.path(path), ["post_id"]).column("post_id")
                new.update(column.to_pylist())
            held &= new
    return dataclasses.replace(spec, removed=removed, held=frozenset(held))


def _read_versions(manifest) -> dict[str, int]:
    """Input label -> the latest version whose files the tokens version ``manifest`` read."""
    if manifest is None:
        return {}
    read = dict(manifest.properties.get("read") or {})
    for entry in manifest.properties.get("inputs") or ():
        read.setdefault(entry["dataset"], int(entry["version"]))
    return read


def _rewrote(ds: Dataset, since: int, upto: int) -> bool:
    """Whether a version of ``ds`` in ``since < v <= upto`` may have rewritten committed files
    the tokens read (anything but a plain append; an expired or unknown one may have)."""
    if since == 0:
        return True
    for v in range(since + 1, upto + 1):
        try:
            if ds.manifest(v).operation != "append":
                return True
        except DatasetError:
            return True
    return False


def build(pipeline, config: TokenizeConfig, the_plan: Plan, progress=None):
    """Wire the tokenize pipeline onto ``pipeline``; returns the run report PCollection.

    ``progress``: the ``transforms.progress.ProgressTarget`` the tokenizing steps report to."""
    import apache_beam as beam

    from transforms import WriteShards
    from transforms.tokenize import PackShards, StageTo, TokenizeDocuments

    so = dict(config.storage_options)
    special = the_plan.tokenizer.special_ids
    chunks = pipeline | "TokenizeDocuments" >> TokenizeDocuments(
        the_plan.inputs,
        DocumentOptions(
            the_plan.tokenizer, config.seed, the_plan.shards, config.patch, config.threads
        ),
        storage_options=so,
        stage_to=StageTo(config.dataset, the_plan.run_id),
        progress=progress,
    )
    packed = (
        chunks
        | "Pieces" >> beam.FlatMap(lambda c: c.pieces)
        | "PackShards"
        >> PackShards(
            config.dataset,
            run_id=the_plan.run_id,
            shards=the_plan.shards,
            opts=PackOptions(
                seq_len=config.seq_len,
                mode=config.pack,
                patch=config.patch,
                pad_id=special["pad"],
                patch_id=special["patch"],
                seed=config.seed,
            ),
            storage_options=so,
            target_file_bytes=config.target_file_bytes,
        )
    )
    return {
        "files": packed | "Files" >> beam.FlatMap(lambda s: s.files),
        "tallies": chunks | "Counts" >> beam.Map(lambda c: c.tally),
        "stats": packed | "Stats" >> beam.Map(lambda s: s.stats),
    } | "WriteShards" >> WriteShards(
        config.dataset,
        "tokens",
        run_id=the_plan.run_id,
        storage_options=so,
        sources=the_plan.sources,
        config=config.manifest_config(the_plan.tokenizer),
        properties=the_plan.properties(config),
        base_version=the_plan.base_version,
        running_totals=_RUNNING_TOTALS,
    )


def run(config: TokenizeConfig, options, *, run_id: str | None = None):
    """Plan and run one tokenize; returns the ``RunReport``. With nothing new to read (all
    input files tokenized before, ``--incremental``), no pipeline runs."""
    from pipelines import tokenize_removals
    from runners.execute import nothing_new, run_pipeline

    the_plan = plan(config, run_id)
    removal = None
    if the_plan.removals is not None and the_plan.removals.affected:
        # Removals first, as their own delete version: a run killed after it leaves them
        # applied, and the tokens appended next never sit next to a removed post's.
        removal = tokenize_removals.run(
            config.dataset,
            the_plan.removals,
            options,
            storage_options=config.storage_options,
            target_file_bytes=config.target_file_bytes,
        )
        the_plan = dataclasses.replace(the_plan, base_version=removal.version)
    if not the_plan.sources:
        if removal is not None:
            return removal
        return nothing_new(
            config.dataset, "tokens", the_plan.run_id, the_plan.already_consumed, "input files"
        )
    log.info(
        "tokenizing %d files of %d datasets into %d shards of %s",
        len(the_plan.sources),
        len(the_plan.inputs),
        the_plan.shards,
        redact_url(config.dataset),
    )
    report = run_pipeline(
        lambda p, target: build(p, config, the_plan, target),
        options,
        dataset=config.dataset,
        run_id=the_plan.run_id,
        base_version=the_plan.base_version,
        storage_options=config.storage_options,
        input_bytes=sum(s.size or 0 for s in the_plan.sources),
        progress=progress_plan(the_plan),
    )
    if removal is not None:
        report.message = (
            f"compliance removals committed first as version {removal.version}: "
            f"{removal.info.get('documents_removed', 0)} documents, "
            f"{removal.info.get('tokens_removed', 0)} tokens, "
            f"{removal.records_deleted} examples removed, "
            f"{removal.info.get('examples_repacked', 0)} re-packed"
        )
    return report


def progress_plan(the_plan: Plan):
    """What the run's progress is measured against: the rows of every input file (from the
    inputs' manifests; ``TokenizeDocuments`` reports under the file's source URI)."""
    from runners.progress import ProgressPlan

    files = {uri: {"rows": n} for uri, n in the_plan.rows.items()}
    return ProgressPlan("tokenize", "rows", files, counters=("tokens",))
