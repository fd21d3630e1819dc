"""``DedupNear``: remove near-duplicate posts (``--dedup-near THRESHOLD``), as Beam stages.

The kept resolution keys of a run find each post's MinHash signature (computed where the post
was staged, ``stage_posts.read_signatures``); they are staged once with it (``_minhash``). Then:

    kept keys (staged once) and committed minhash/ files (live rows only, ``oph64-v1``):
      -- GroupByKey(signature key) -- Copies --> posts whose signature an earlier post has
      -- Bands (but copies) -- GroupByKey(band key bucket) -- Candidates --> pairs that
         may be near-duplicates (their signatures' low bits allow it)
    pairs -> the set of their posts -> Members (from kept keys and committed minhash/ files)
    pairs + members + copies -- Choose (one step) --> removed post -> kept twin
    kept keys -- Drop (removed posts) --> kept keys; their signatures -> minhash/<run_id>-*.parquet
    removed -> near_duplicates/<run_id>.parquet

Every step but ``Choose`` runs per batch on any number of workers; ``Choose`` sees only the
posts of candidate pairs and the list of copies. Signature keys, band rows, pairs, copies and
the members' signatures are written to the run's staging area (``catalog.staging``) by the step
that makes them and read by the steps that use them: only references cross Beam's data plane
(a step that needs the posts of every copy or pair reads those tables itself). Committed
``minhash/`` files are read where they are used, by path.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.parquet import read_parquet
from catalog.staging import StagedRows, read_staged, staging_dir, write_staged
from catalog.storage import join, open_url
from schemas import MINHASH_SCHEMA, FileEntry, UserError
from schemas.near_dup import MINHASH_SCHEME, MINHASH_SCHEME_KEY, SIGNATURE_TYPE
from transforms.posts.minhash import lsh_params
from transforms.posts.near_dup import (
    band_rows,
    candidate_pairs,
    choose_removals,
    copy_rows,
    expand_removals,
    live_signatures,
    member_rows,
    members_of,
    minhash_rows,
    removed_keys,
    split_copies,
    unique_keys,
    with_post_keys,
)
from transforms.posts.removals import Removals
from transforms.posts.resolve import TIE_BREAK_COLUMNS
from transforms.posts.stage_posts import read_signatures

__all__ = ["DedupNear", "check_signature_files", "write_side_file"]

_COUNT = "deduplicated:near_duplicate"
# Columns of the kept keys that nothing after this step reads: the tie-breaks of resolving, the
# text hash (read by --dedup-text, before) and where ``stage_posts`` staged the signatures.
_RESOLVED_ONLY = (*TIE_BREAK_COLUMNS, "text_hash", "_sig_batch", "_sig_row")


def write_side_file(fs, root: str, path: str, table: pa.Table) -> FileEntry:
    """Write ``table`` as zstd Parquet at ``path`` (relative to ``root``); its manifest entry.
    Names hold the run id, so a retried run rewrites its own files and nothing else."""
    buf = io.BytesIO()
    # Signatures are random 32-bit values: zstd and dictionary pages only cost time on them
    # (0.8 s, not 0.3 s, for 200,000 signatures, and a larger file).
    names = table.schema.names
    hashes = {n for n in names if table.schema.field(n).type == SIGNATURE_TYPE}
    pq.write_table(
        table,
        buf,
        compression={n: "none" if n in hashes else "zstd" for n in names},
        use_dictionary=[n for n in names if n not in hashes],
    )
    data = buf.getvalue()
    fs.makedirs(join(root, path.rsplit("/", 1)[0]), exist_ok=True)
    with fs.open(join(root, path), "wb") as f:
        f.write(data)
    return FileEntry(path, table.num_rows, len(data), "sha256:" + hashlib.sha256(data).hexdigest())


def check_signature_files(fs, root: str, paths: Sequence[str]) -> None:
    """``UserError`` unless every committed ``minhash/`` file at ``paths`` (relative to ``root``)
    holds signatures of the scheme this version computes (``schemas.near_dup.MINHASH_SCHEME``):
    signatures of two schemes estimate nothing against each other, and comparing them would
    silently keep every near-duplicate of a committed post. Reads only the files' footers."""
    for path in paths:
        with fs.open(join(root, path), "rb") as f:
            meta = pq.ParquetFile(f).schema_arrow.metadata or {}
        scheme = meta.get(MINHASH_SCHEME_KEY, b"").decode() or "64 permutations (before oph64-v1)"
        if scheme != MINHASH_SCHEME:
            raise UserError(
                f"{path}: MinHash signatures of scheme {scheme!r}, this shardsmith computes "
                f"{MINHASH_SCHEME!r}; --dedup-near cannot compare new posts with them: ingest "
                "into a new dataset, or run without --dedup-near"
            )


class _NearFn(beam.DoFn):
    """A step that reads signature rows: the kept keys of this run (a ``StagedRows`` reference
    from ``_StageKeptFn``) or a committed ``minhash/`` file (its path; live rows only, see
    ``near_dup.live_signatures``)."""

    def __init__(self, url, storage_options):
        self._url, self._storage_options = url, storage_options

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def _rows(self, element: StagedRows | str, removals: Removals) -> pa.Table:
        if isinstance(element, StagedRows):
            return read_staged(self._fs, self._root, element)
        table = read_parquet(self._fs, join(self._root, element), schema=MINHASH_SCHEMA)
        return with_post_keys(live_signatures(table, removals))


class _StageGroupsFn(_NearFn):
    """Signature rows -> ``fn(rows, *side)``'s ``(group, table)`` pairs, written to the run's
    staging area (one file, one record batch per group) -> ``(group, StagedRows)``.

    Band rows, signature keys and member signatures are most of what ``--dedup-near`` moves
    (ten band rows a post at 0.8): through Beam's data plane each was pickled, copied into the
    runner and out again; staged, a few bytes a group move instead.

    With ``post_columns``, the one side input is a list of references to staged tables (copies,
    pairs), and ``fn`` gets the sorted distinct post keys of those columns instead: read here,
    once per worker, not merged by a global combine (more stages, each a barrier, on the local
    runner)."""

    def __init__(self, url, storage_options, run_id, kind, post_columns=()):
        super().__init__(url, storage_options)
        self._run_id, self._kind, self._post_columns = run_id, kind, post_columns
        self._posts_read = (None, None)  # (the references, their post keys)

    def process(self, element: StagedRows | str, removals: Removals, fn, *side):
        if self._post_columns:
            side = [self._posts(side[0])]
        groups = [(g, t) for g, t in fn(self._rows(element, removals), *side) if t.num_rows]
        if not groups:
            return
        # Named after the element, so a retried bundle rewrites the same file.
        name = element if isinstance(element, str) else f"{element.path}#{element.batch}"
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        path = f"{staging_dir(self._run_id)}/near/{self._kind}-{digest}.arrow"
        # Hashes and signatures: LZ4 finds nothing to shrink in them.
        write_staged(self._fs, self._root, path, [t for _, t in groups], compress=False)
        for i, (group, _) in enumerate(groups):
            yield group, StagedRows(path, i)

    def _posts(self, refs: Sequence[StagedRows]) -> np.ndarray:
        """The sorted distinct post keys in ``post_columns`` of the staged tables ``refs``."""
        names = sorted((r.path, r.batch) for r in refs)
        if self._posts_read[0] != names:
            keys = [np.empty(0, np.uint64)]
            for ref in refs:
                table = read_staged(self._fs, self._root, ref)
                keys += [table.column(c).to_numpy() for c in self._post_columns]
            self._posts_read = (names, unique_keys(np.concatenate(keys)))
        return self._posts_read[1]


class _ReadGroupFn(_NearFn):
    """``(group, [StagedRows])`` (from ``_StageGroupsFn``, grouped) -> ``fn(tables)``, a table
    written to the run's staging area unless it is empty -> a ``StagedRows`` reference to it.

    Pairs and copies are read by the one ``Choose`` step: as side inputs through Beam's state
    API each was pickled, served by the runner and unpickled (0.6-0.8 s of a serial step at
    1 M lines); staged, that step reads them from its own disk."""

    def __init__(self, url, storage_options, run_id, kind):
        super().__init__(url, storage_options)
        self._run_id, self._kind = run_id, kind

    def process(self, kv, fn):
        table = fn([read_staged(self._fs, self._root, ref) for ref in kv[1]])
        if table.num_rows == 0:
            return
        # Named after the group, so a retried bundle rewrites the same file.
        path = f"{staging_dir(self._run_id)}/near/{self._kind}-{kv[0]}.arrow"
        write_staged(self._fs, self._root, path, [table], compress=False)
        yield StagedRows(path, 0)


class _StageKeptFn(_NearFn):
    """Kept keys -> the staging area of the run, with their signatures; a reference to them."""

    def __init__(self, url, storage_options, run_id):
        super().__init__(url, storage_options)
        self._run_id = run_id

    def process(self, kept: pa.Table):
        if kept.num_rows == 0:
            return
        path = f"{staging_dir(self._run_id)}/near/{_name(kept)}.arrow"
        kept = kept.append_column("_minhash", read_signatures(self._fs, self._root, kept))
        # What only resolving and ``read_signatures`` read stays behind: a sixth of the bytes
        # staged here at 1 M lines.
        kept = kept.drop_columns([c for c in _RESOLVED_ONLY if c in kept.column_names])
        # Mostly signatures, which LZ4 cannot shrink, and read four times.
        write_staged(self._fs, self._root, path, [with_post_keys(kept)], compress=False)
        yield StagedRows(path, 0)


class _ReadStagedFn(_NearFn):
    """A reference to staged rows (kept keys from ``_StageKeptFn``, pairs or copies from
    ``_ReadGroupFn``) -> ``fn(rows, *side inputs)``'s elements."""

    def process(self, ref: StagedRows, fn, *side):
        yield from fn(read_staged(self._fs, self._root, ref), *side)


class _ChooseFn(_NearFn):
    """Pairs, staged members and copies -> the removed posts (``near_dup.choose_removals``,
    then ``near_dup.expand_removals``) and their post keys (``near_dup.removed_keys``): one
    ``(table, keys)``."""

    def process(self, _, pairs, members, copies, threshold: float, run_id: str):
        pairs, copies = (
            [read_staged(self._fs, self._root, r) for r in refs] for refs in (pairs, copies)
        )
        tables = [read_staged(self._fs, self._root, ref) for _, ref in members]
        removed = choose_removals(pairs, tables, threshold, run_id)
        yield expand_removals(removed, copies, run_id), removed_keys(removed, tables, copies)


class _WriteNearFn(beam.DoFn):
    """The removed posts -> ``near_duplicates/<run_id>.parquet`` (none when there are none)."""

    def __init__(self, url, storage_options, run_id):
        self._url, self._storage_options, self._run_id = url, storage_options, run_id

    def process(self, removed: pa.Table):
        if removed.num_rows:
            fs, root = open_url(self._url, self._storage_options)
            yield write_side_file(fs, root, f"near_duplicates/{self._run_id}.parquet", removed)


def _name(kept: pa.Table) -> str:
    # The kept keys of one bucket: their smallest post id names them, the same on a retry.
    # (Arrow compares UTF-8 bytes, which order as the code points Python's min compares.)
    first = pc.min(kept.column("post_id")).as_py()
    return hashlib.sha256(first.encode()).hexdigest()[:16]


class _WriteMinhashFn(beam.DoFn):
    """Kept keys -> ``minhash/<run_id>-<name>.parquet`` (name: from the first post id, so a
    retried bundle rewrites the same file)."""

    def __init__(self, url, storage_options, run_id):
        self._url, self._storage_options, self._run_id = url, storage_options, run_id

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, kept: pa.Table):
        if kept.num_rows == 0:
            return
        path = f"minhash/{self._run_id}-{_name(kept)}.parquet"
        yield write_side_file(self._fs, self._root, path, minhash_rows(kept))


def _drop(kept: pa.Table, removed: np.ndarray):
    """Kept keys (with ``_post``) without the posts whose keys are in ``removed`` (sorted)."""
    if kept.num_rows == 0 or len(removed) == 0:
        return kept, {}
    gone = members_of(kept.column("_post").to_numpy(), removed)
    n = int(np.count_nonzero(gone))
    return (kept.filter(pa.array(~gone)), {_COUNT: n}) if n else (kept, {})


class DedupNear(beam.PTransform):
    """Remove this run's posts that are near-duplicates of a committed post or of an earlier
    post of the run (``transforms.posts.near_dup`` says which exactly).

    Input: ``{"kept": tables of kept resolution keys of posts ``StagePosts(minhash=True)``
    staged (with their signatures), "removals": one ``Removals``}``. Output: ``{"kept": the
    kept keys without the removed posts (nor the columns only resolving reads), "tallies":
    ``{"deduplicated:near_duplicate": n}`` dicts, "side_files": ``FileEntry`` s of the
    ``minhash/`` and ``near_duplicates/`` files written}``.

    Example::

        out = {"kept": kept, "removals": removals} | DedupNear(
            "/data/posts", threshold=0.8, run_id=run_id, committed=[], buckets=8
        )

    Args:
        dataset / storage_options: the dataset the run appends to.
        threshold: the estimated Jaccard similarity (of character 5-gram sets) at or above which
            a post is a near-duplicate, in (0, 1]; it sets the LSH bands (``minhash.lsh_params``).
        run_id: the run's id (in the names of the files written).
        committed: the ``minhash/`` files of the version the run builds on.
        buckets: how many groups band keys are spread over.
    """

    def __init__(
        self,
        dataset: str,
        *,
        threshold: float,
        run_id: str,
        committed: Sequence[str],
        buckets: int,
        storage_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self._params = lsh_params(threshold)
        if buckets < 1:
            raise ValueError(f"buckets={buckets}: expected >= 1")
        self._url = dataset
        self._run_id = run_id
        self._committed = list(committed)
        self._buckets = buckets
        self._storage_options = dict(storage_options or {})

    def expand(self, inputs):
        kept, removals = inputs["kept"], beam.pvalue.AsSingleton(inputs["removals"])
        p = kept.pipeline
        params, buckets, run_id = self._params, self._buckets, self._run_id
        url, so, files = self._url, self._storage_options, self._committed

        def stage(kind, post_columns=()):
            return _StageGroupsFn(url, so, run_id, kind, post_columns)

        # The kept keys go to the staging area once; references to them move on. Each step
        # that reads them with a side input computed from them starts after its own
        # Reshuffle: fused into the step that computes the side input, it would wait for
        # itself (Beam's local runner stops with "watermark-pending bundles").
        refs = kept | "StageKept" >> beam.ParDo(_StageKeptFn(url, so, run_id))
        # Posts with the signature of an earlier one (reposts, copy-paste) are set aside.
        copies = (
            (
                refs
                | "NewSignatureKeys"
                >> beam.ParDo(
                    stage("sigs-new"),
                    removals,
                    lambda t: copy_rows(t, "_minhash", new=True, buckets=buckets),
                ),
                p
                | "ListCommittedForCopies" >> beam.Create(files)
                | "CommittedSignatureKeys"
                >> beam.ParDo(
                    stage("sigs-old"),
                    removals,
                    lambda t: copy_rows(t, "minhash", new=False, buckets=buckets),
                ),
            )
            | "AllSignatureKeys" >> beam.Flatten()
            | "GroupBySignature" >> beam.GroupByKey()
            | "Copies" >> beam.ParDo(_ReadGroupFn(url, so, run_id, "copies"), split_copies)
        )
        pairs = (
            (
                refs
                | "ReshuffleForBands" >> beam.Reshuffle()
                | "NewBands"
                >> beam.ParDo(
                    stage("bands-new", post_columns=("post",)),
                    removals,
                    lambda t, skip: band_rows(
                        t, "_minhash", params, new=True, buckets=buckets, skip=skip
                    ),
                    beam.pvalue.AsList(copies),
                ),
                p
                | "ListCommittedForBands" >> beam.Create(files)
                | "CommittedBands"
                >> beam.ParDo(
                    stage("bands-old"),
                    removals,
                    lambda t: band_rows(t, "minhash", params, new=False, buckets=buckets),
                ),
            )
            | "AllBands" >> beam.Flatten()
            | "GroupByBand" >> beam.GroupByKey()
            | "Candidates"
            >> beam.ParDo(
                _ReadGroupFn(url, so, run_id, "pairs"),
                lambda t: candidate_pairs(t, threshold=params.threshold),
            )
        )
        # The signatures of the posts of some pair, staged: references go to Choose.
        members = (
            refs
            | "ReshuffleForMembers" >> beam.Reshuffle()
            | "NewMembers"
            >> beam.ParDo(
                stage("members-new", post_columns=("a", "b")),
                removals,
                lambda t, m: [(0, member_rows(t, "_minhash", m, new=True))],
                beam.pvalue.AsList(pairs),
            ),
            p
            | "ListCommittedForMembers" >> beam.Create(files)
            | "CommittedMembers"
            >> beam.ParDo(
                stage("members-old", post_columns=("a", "b")),
                removals,
                lambda t, m: [(0, member_rows(t, "minhash", m, new=False))],
                beam.pvalue.AsList(pairs),
            ),
        ) | "AllMembers" >> beam.Flatten()
        removed = (
            p
            | "ChooseTrigger" >> beam.Create([None])
            | "Choose"
            >> beam.ParDo(
                _ChooseFn(url, so),
                beam.pvalue.AsList(pairs),
                beam.pvalue.AsList(members),
                beam.pvalue.AsList(copies),
                params.threshold,
                run_id,
            )
        )
        dropped = (
            refs
            | "ReshuffleForDrop" >> beam.Reshuffle()
            | "DropNear"
            >> beam.ParDo(
                _ReadStagedFn(url, so),
                lambda t, r: [_drop(t, r)],
                beam.pvalue.AsSingleton(removed | "RemovedPosts" >> beam.Map(lambda r: r[1])),
            )
        )
        kept = dropped | "NearKept" >> beam.Map(lambda d: d[0])
        side_files = (
            kept | "WriteMinhash" >> beam.ParDo(_WriteMinhashFn(url, so, run_id)),
            removed
            | "RemovedTable" >> beam.Map(lambda r: r[0])
            | "WriteNearDuplicates" >> beam.ParDo(_WriteNearFn(url, so, run_id)),
        ) | "AllSideFiles" >> beam.Flatten()
        return {
            "kept": kept,
            "tallies": dropped | "NearCounts" >> beam.Map(lambda d: d[1]),
            "side_files": side_files,
        }
