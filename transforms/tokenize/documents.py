"""Documents: what one training document is, rendered from rows of a ``posts`` or ``clips`` table.

* a post is one document: its text;
* with threads, a reply thread (posts sharing a ``conversation_id``, in time order) is one
  document: the texts joined by a blank line;
* a clip window is one multimodal document: the event reason and the clip's ``tags`` (but the
  ``event:`` one, which repeats the reason) as text when there are any, then per camera ``<|video_start|>``, one ``<|patch|>`` placeholder per patch of every sampled frame,
  ``<|video_end|>``.

Every document ends with EOS. Rows with nothing to say (empty text, a clip without frames or
reason) are skipped with a counted reason, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.tokenize.patches import frame_grid, jpeg_size

__all__ = [
    "DOCS_SCHEMA",
    "FRAME",
    "Rendered",
    "clip_documents",
    "docs_table",
    "post_documents",
    "thread_documents",
]

FRAME = pa.struct(
    [("pos", pa.int32()), ("rows", pa.int32()), ("cols", pa.int32()), ("jpeg", pa.binary())]
)
# Documents between tokenizing and packing: token ids (placeholders for patches) plus the JPEG
# frames the placeholders stand for, so the shuffle moves compressed frames, not raw patches.
DOCS_SCHEMA = pa.schema(
    [
        ("key", pa.uint64()),
        ("dataset", pa.string()),
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("records", pa.int32()),
        ("input_ids", pa.list_(pa.int32())),
        ("frames", pa.list_(FRAME)),
    ]
)


@dataclass
class Rendered:
    """Documents rendered from one table, before tokenizing: text documents carry ``texts``;
    multimodal ones carry their ``input_ids`` and ``frames`` already."""

    doc_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    input_ids: list[np.ndarray] = field(default_factory=list)
    frames: list[list[dict]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def _with_text(table: pa.Table, out: Rendered) -> pa.Table:
    """The rows of ``table`` that have text; the others are counted as skipped in ``out``."""
    keep = pc.fill_null(pc.greater(pc.utf8_length(table.column("text")), 0), False)
    empty = table.num_rows - pc.sum(keep).as_py() if table.num_rows else 0
    if empty:
        out.skipped["empty_text"] = empty
    return table.filter(keep)


def post_documents(table: pa.Table, source: str) -> Rendered:
    """One document per post with text (``post_id``, ``text``) of the file ``source``."""
    out = Rendered()
    kept = _with_text(table, out)
    out.doc_ids = kept.column("post_id").to_pylist()
    out.texts = kept.column("text").to_pylist()
    out.records = [1] * kept.num_rows
    out.sources = [source] * kept.num_rows
    return out


def thread_documents(table: pa.Table) -> Rendered:
    """One document per reply thread: posts with the same ``conversation_id`` (a post without
    one is its own thread), in ``created_at`` order, texts joined by a blank line. The table
    must hold whole threads (``post_id``, ``text``, ``created_at``, ``conversation_id``,
    ``source``); the thread's source is its first post's."""
    out = Rendered()
    t = _with_text(table, out)
    thread = pc.coalesce(t.column("conversation_id"), t.column("post_id"))
    t = t.append_column("thread", thread).sort_by(
        [("thread", "ascending"), ("created_at", "ascending"), ("post_id", "ascending")]
    )
    threads, texts, sources = (t.column(c).to_pylist() for c in ("thread", "text", "source"))
    start = 0
    for i in range(1, len(threads) + 1):
        if i == len(threads) or threads[i] != threads[start]:
            out.doc_ids.append(threads[start])
            out.texts.append("\n\n".join(texts[start:i]))
            out.sources.append(sources[start])
            out.records.append(i - start)
            start = i
    return out


def clip_documents(
    table: pa.Table, source: str, tokenizer, special_ids: dict[str, int], patch: int
) -> Rendered:
    """One multimodal document per clip window (``clip_id``, ``cameras``, ``event``, ``tags``).

    ``tokenizer`` encodes the event reason and tags, space-separated
    (``TokenizerSpec.backend()``); frame ``pos`` is the offset of the frame's first placeholder
    in the document.
    """
    out = Rendered()
    ids = table.column("clip_id").to_pylist()
    cameras = table.column("cameras").to_pylist()
    events = table.column("event").to_pylist()
    tags = table.column("tags").to_pylist() if "tags" in table.column_names else [None] * len(ids)
    reasons = [
        " ".join(
            [(e or {}).get("reason") or "", *(t for t in ts or () if not t.startswith("event:"))]
        ).strip()
        for e, ts in zip(events, tags, strict=True)
    ]
    encoded = tokenizer.encode_batch_fast(reasons, add_special_tokens=False)
    vs, ve, ph = special_ids["video_start"], special_ids["video_end"], special_ids["patch"]
    for clip_id, cams, reason in zip(ids, cameras, encoded, strict=True):
        pieces: list[np.ndarray] = [np.asarray(reason.ids, np.int32)]
        pos = len(reason.ids)
        frames: list[dict] = []
        for cam in cams or ():
            jpegs = [f for f in cam.get("frames") or () if f]
            if not jpegs:
                continue
            pieces.append(np.array([vs], np.int32))
            pos += 1
            for jpeg in jpegs:
                rows, cols = frame_grid(*jpeg_size(jpeg), patch)
                frames.append({"pos": pos, "rows": rows, "cols": cols, "jpeg": jpeg})
                pieces.append(np.full(rows * cols, ph, np.int32))
                pos += rows * cols
            pieces.append(np.array([ve], np.int32))
            pos += 1
        if pos == 0:
            out.skipped["empty_clip"] = out.skipped.get("empty_clip", 0) + 1
            continue
        pieces.append(np.array([special_ids["eos"]], np.int32))
        out.doc_ids.append(clip_id)
        out.sources.append(source)
        out.records.append(1)
        out.input_ids.append(np.concatenate(pieces))
        out.frames.append(frames)
    return out


def docs_table(
    rendered: Rendered, keys: np.ndarray, dataset: str, input_ids: pa.Array | None = None
) -> pa.Table:
    """The documents as a ``DOCS_SCHEMA`` table; ``input_ids`` when the texts were encoded
    separately (text documents), else the rendered ones."""
    n = len(rendered.doc_ids)
    if input_ids is None:
        input_ids = pa.array(rendered.input_ids or [], pa.list_(pa.int32()))
    frames = (
        pa.array(rendered.frames, pa.list_(FRAME))
        if rendered.frames
        else pa.nulls(n, pa.list_(FRAME))
    )
    return pa.Table.from_arrays(
        [
            pa.array(keys, pa.uint64()),
            pa.array([dataset] * n, pa.string()),
            pa.array(rendered.doc_ids, pa.string()),
            pa.array(rendered.sources, pa.string()),
            pa.array(rendered.records, pa.int32()),
            input_ids,
            frames,
        ],
        schema=DOCS_SCHEMA,
    )
