"""Packing shuffled documents into fixed-length training examples (DESIGN.md §3 ``tokens``).

* ``concat``: the documents' tokens back to back, cut every ``seq_len`` tokens; a document that
  crosses a cut continues in the next example. Only the last example may be short.
* ``pad``: one document per example, truncated to ``seq_len`` or padded with the pad id.

The layout (which piece of which document lands where) is computed with numpy for a whole
shard at once; examples are then materialized a chunk at a time, so raw patches of at most one
chunk are in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas import TOKENS
from schemas.kinds import MEDIA_PATCHES, SOURCE_SPAN
from transforms.tokenize.patches import patchify

__all__ = ["PACK_MODES", "Layout", "PackOptions", "example_id", "example_tables", "layout"]

PACK_MODES = ("concat", "pad")
_CHUNK_BYTES = 32 << 20  # raw bytes (tokens + patches) of the examples materialized at once


@dataclass(frozen=True)
class PackOptions:
    """How examples are cut: ``seq_len`` tokens, ``mode`` concat|pad, ``patch`` size in pixels,
    the ``pad_id`` and ``patch_id`` tokens, and the ``seed``/``kind`` names hashed into ids."""

    seq_len: int
    mode: str
    patch: int
    pad_id: int
    patch_id: int
    seed: int


@dataclass
class Layout:
    """Where every piece of every document goes.

    ``tokens`` holds the examples' tokens back to back; example ``e`` is
    ``tokens[starts[e]:starts[e+1]]``. Its pieces are ``seg_*[segs[e]:segs[e+1]]``: the
    document index, the offset inside that document and the length.
    """

    tokens: np.ndarray
    starts: np.ndarray
    segs: np.ndarray
    seg_doc: np.ndarray
    seg_offset: np.ndarray
    seg_len: np.ndarray
    truncated_tokens: int = 0

    @property
    def examples(self) -> int:
        return len(self.starts) - 1


def layout(input_ids: pa.ListArray, opts: PackOptions) -> Layout:
    """The packing layout of documents (in shuffled order) whose ids are ``input_ids``."""
    offsets = input_ids.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    flat = input_ids.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    lens = np.diff(offsets)
    s = opts.seq_len
    if opts.mode == "concat":
        total = int(offsets[-1])
        cuts = np.arange(0, total, s, dtype=np.int64)
        seg_start = np.union1d(offsets[:-1][lens > 0], cuts)
        seg_end = np.append(seg_start[1:], total)
        seg_doc = np.searchsorted(offsets, seg_start, side="right") - 1
        seg_example = seg_start // s
        examples = len(cuts)
        return Layout(
            tokens=flat,
            starts=np.append(cuts, total),
            segs=np.searchsorted(seg_example, np.arange(examples + 1), side="left"),
            seg_doc=seg_doc,
            seg_offset=seg_start - offsets[seg_doc],
            seg_len=seg_end - seg_start,
        )
    kept = np.minimum(lens, s)
    n = len(lens)
    tokens = np.full(n * s, opts.pad_id, np.int32)
    within = np.arange(int(kept.sum()), dtype=np.int64) - np.repeat(np.cumsum(kept) - kept, kept)
    src = np.repeat(offsets[:-1], kept) + within
    dst = np.repeat(np.arange(n, dtype=np.int64) * s, kept) + within
    tokens[dst] = flat[src]
    return Layout(
        tokens=tokens,
        starts=np.arange(n + 1, dtype=np.int64) * s,
        segs=np.arange(n + 1, dtype=np.int64),
        seg_doc=np.arange(n, dtype=np.int64),
        seg_offset=np.zeros(n, np.int64),
        seg_len=kept,
        truncated_tokens=int((lens - kept).sum()),
    )


def _chunks(lay: Layout, opts: PackOptions) -> Iterator[tuple[int, int]]:
    # Examples weigh 4 bytes a token plus p*p*3 bytes a patch placeholder (counted from the
    # placeholders' positions: no per-token weight array).
    patches = np.flatnonzero(lay.tokens == opts.patch_id)
    in_example = np.diff(np.searchsorted(patches, lay.starts))
    per_example = 4 * np.diff(lay.starts) + opts.patch * opts.patch * 3 * in_example
    start, acc = 0, 0
    for e, w in enumerate(per_example):
        if acc and acc + w > _CHUNK_BYTES:
            yield start, e
            start, acc = e, 0
        acc += int(w)
    if start < lay.examples:
        yield start, lay.examples


class _Frames:
    """Patches of a document's frames, decoded when first needed (one frame cached: a frame cut
    between two examples is decoded once)."""

    def __init__(self, patch: int):
        self._patch = patch
        self._key = None
        self._patches = None

    def get(self, key, jpeg: bytes) -> np.ndarray:
        if key != self._key:
            self._key, self._patches = key, patchify(jpeg, self._patch)
        return self._patches


def _media(lay: Layout, docs: pa.Table, a: int, b: int, cache: _Frames, p: int) -> list:
    s0, s1 = int(lay.segs[a]), int(lay.segs[b])
    with_frames = docs.column("frames").is_valid().to_numpy(zero_copy_only=False)
    if not with_frames[lay.seg_doc[s0:s1]].any():
        return [[] for _ in range(a, b)]
    frames_of = {}
    out = []
    for e in range(a, b):
        entries = []
        for s in range(lay.segs[e], lay.segs[e + 1]):
            d = int(lay.seg_doc[s])
            if not with_frames[d]:
                continue
            if d not in frames_of:
                frames_of[d] = docs.column("frames")[d].as_py()
            lo, hi = int(lay.seg_offset[s]), int(lay.seg_offset[s] + lay.seg_len[s])
            for i, fr in enumerate(frames_of[d]):
                n = fr["rows"] * fr["cols"]
                if fr["pos"] >= hi or fr["pos"] + n <= lo:
                    continue
                first, last = max(lo, fr["pos"]) - fr["pos"], min(hi, fr["pos"] + n) - fr["pos"]
                patches = cache.get((d, i), fr["jpeg"])[first:last]
                shape = [last - first, p, p, 3]
                entries.append(
                    {"kind": "video_frame", "shape": shape, "patches": patches.tobytes()}
                )
        out.append(entries)
    return out


def example_id(seed: int, seq_len: int, mode: str, dataset: str, doc_id: str, offset: int) -> str:
    """The id of an example whose first piece is ``doc_id`` of ``dataset`` from ``offset``.

    From what the example starts with, so ids are the same on every run of the same inputs and
    differ between seeds, lengths and modes (a re-packed example gets the id of its new start).
    """
    name = f"{seed}/{seq_len}/{mode}/{dataset}/{doc_id}/{offset}"
    return hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


def _example_ids(lay: Layout, docs: pa.Table, opts: PackOptions, a: int, b: int) -> list[str]:
    ds, ids = docs.column("dataset"), docs.column("doc_id")
    out = []
    for e in range(a, b):
        s = lay.segs[e]
        d = int(lay.seg_doc[s])
        out.append(example_id(opts.seed, opts.seq_len, opts.mode, ds[d], ids[d], lay.seg_offset[s]))
    return out


def example_tables(docs: pa.Table, lay: Layout, opts: PackOptions) -> Iterator[pa.Table]:
    """The examples of ``lay`` as ``tokens`` tables, a bounded chunk at a time."""
    cache = _Frames(opts.patch)
    for a, b in _chunks(lay, opts):
        t0, t1 = int(lay.starts[a]), int(lay.starts[b])
        s0, s1 = int(lay.segs[a]), int(lay.segs[b])
        seg_doc = pa.array(lay.seg_doc[s0:s1])
        spans = pa.StructArray.from_arrays(
            [
                docs.column("dataset").take(seg_doc).combine_chunks(),
                docs.column("doc_id").take(seg_doc).combine_chunks(),
                pa.array(lay.seg_offset[s0:s1], pa.int32()),
                pa.array(lay.seg_len[s0:s1], pa.int32()),
            ],
            fields=list(SOURCE_SPAN),
        )
        seg_offsets = pa.array((lay.segs[a : b + 1] - s0).astype(np.int32))
        yield pa.Table.from_arrays(
            [
                pa.array(_example_ids(lay, docs, opts, a, b), pa.string()),
                pa.ListArray.from_arrays(
                    pa.array((lay.starts[a : b + 1] - t0).astype(np.int32)),
                    pa.array(lay.tokens[t0:t1], pa.int32()),
                ),
                pa.ListArray.from_arrays(seg_offsets, pa.array(lay.seg_len[s0:s1], pa.int32())),
                pa.ListArray.from_arrays(seg_offsets, spans),
                pa.array(_media(lay, docs, a, b, cache, opts.patch), pa.list_(MEDIA_PATCHES)),
            ],
            schema=TOKENS.schema,
        )
