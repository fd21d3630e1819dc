"""The Arrow schemas of every dataset kind (DESIGN.md §3). Column names and types are the contract."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["CLIPS", "GEO", "KINDS", "POSTS", "TOKENS", "KindSpec", "kind_spec"]

_STRINGS = pa.list_(pa.string())

MEDIA = pa.struct(
    [
        ("media_key", pa.string()),
        ("type", pa.string()),
        ("url", pa.string()),
        ("preview_url", pa.string()),
        ("duration_ms", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("alt_text", pa.string()),
    ]
)

# X's ``geo`` of a post: the place it was tagged with and, when shared, its point as
# [longitude, latitude]. ``scrub_geo`` compliance events null it.
GEO = pa.struct([("place_id", pa.string()), ("coordinates", pa.list_(pa.float64()))])

POSTS_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        ("author_id", pa.string()),
        ("author_username", pa.string()),
        ("text", pa.string()),
        ("lang", pa.string()),
        # Where ``lang`` came from: "source" (X's own label) or "detected" (the source had none;
        # ``transforms.posts.lang_id``). Null in files written before it.
        ("lang_source", pa.string()),
        ("conversation_id", pa.string()),
        ("reply_to_post_id", pa.string()),
        ("quoted_post_id", pa.string()),
        ("reposted_post_id", pa.string()),
        ("hashtags", _STRINGS),
        ("mentions", _STRINGS),
        ("cashtags", _STRINGS),
        ("urls", _STRINGS),
        ("media", pa.list_(MEDIA)),
        ("like_count", pa.int64()),
        ("repost_count", pa.int64()),
        ("reply_count", pa.int64()),
        ("quote_count", pa.int64()),
        ("possibly_sensitive", pa.bool_()),
        # Countries where X withholds the post (the post's own ``withheld.country_codes`` and
        # ``withheld`` / ``user_withheld`` compliance events); null when withheld nowhere.
        ("withheld_in_countries", _STRINGS),
        ("geo", GEO),
        ("edit_history_ids", _STRINGS),
        ("text_hash", pa.uint64()),
        ("source_uri", pa.string()),
        ("source_line", pa.int64()),
    ]
)

CAMERA = pa.struct(
    [
        ("camera", pa.string()),
        ("codec", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("source_fps", pa.float64()),
        ("frame_ts_us", pa.list_(pa.int64())),
        ("frames", pa.list_(pa.binary())),
        ("source_uri", pa.string()),
        ("dropped_frames", pa.int32()),
    ]
)

TELEMETRY = pa.struct(
    [
        ("ts_us", pa.list_(pa.int64())),
        ("speed_mps", pa.list_(pa.float64())),
        ("steering_deg", pa.list_(pa.float64())),
        ("lat", pa.list_(pa.float64())),
        ("lon", pa.list_(pa.float64())),
        ("heading_deg", pa.list_(pa.float64())),
        ("accel_mps2", pa.list_(pa.float64())),
    ]
)

# What Tesla SEI adds to ``telemetry``, on its ``ts_us`` (``transforms.fleet.telemetry_ext``):
# a column of its own, since changing ``telemetry``'s struct type would make every clips
# dataset written before it unreadable (``schemas.evolution`` refuses a changed type).
TELEMETRY_EXT = pa.struct(
    [
        ("accel_pedal", pa.list_(pa.float64())),
        ("brake", pa.list_(pa.bool_())),
        ("blinker_left", pa.list_(pa.bool_())),
        ("blinker_right", pa.list_(pa.bool_())),
        ("autopilot", pa.list_(pa.string())),
        ("gear", pa.list_(pa.string())),
        ("lateral_accel_mps2", pa.list_(pa.float64())),
    ]
)

EVENT = pa.struct(
    [("reason", pa.string()), ("city", pa.string()), ("lat", pa.float64()), ("lon", pa.float64())]
)

QUALITY = pa.struct(
    [
        ("black_fraction", pa.float64()),
        ("blur_score", pa.float64()),
        ("frozen_fraction", pa.float64()),
        ("camera_skew_ms", pa.float64()),
        ("dropped_frames", pa.int32()),
    ]
)

CLIPS_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        ("vehicle_id", pa.string()),
        ("session_id", pa.string()),
        pa.field("start_time", pa.timestamp("us", tz="UTC"), nullable=False),
        ("duration_s", pa.float64()),
        ("cameras", pa.list_(CAMERA)),
        ("telemetry", TELEMETRY),
        ("event", EVENT),
        ("quality", QUALITY),
        ("telemetry_ext", TELEMETRY_EXT),
        # Moments a data engine mines by (transforms.fleet.tags): hard_brake, stop, ...
        ("tags", pa.list_(pa.string())),
    ]
)

SOURCE_SPAN = pa.struct(
    [("dataset", pa.string()), ("id", pa.string()), ("offset", pa.int32()), ("length", pa.int32())]
)

MEDIA_PATCHES = pa.struct(
    [("kind", pa.string()), ("shape", pa.list_(pa.int32())), ("patches", pa.binary())]
)

TOKENS_SCHEMA = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),
        ("input_ids", pa.list_(pa.int32())),
        ("doc_lens", pa.list_(pa.int32())),
        ("sources", pa.list_(SOURCE_SPAN)),
        ("media", pa.list_(MEDIA_PATCHES)),
    ]
)

_MiB = 1 << 20


@dataclass(frozen=True)
class KindSpec:
    """Everything the dataset layer needs to know about one kind.

    Args:
        name: the kind's name as written in ``dataset.json``.
        schema: the exact Arrow schema of its data files.
        key: the column that identifies a row (used to spread rows over writers).
        partition_by: the timestamp column whose UTC date gives the hive ``dt=`` partition,
            or None for an unpartitioned kind.
        sort_by: columns each row group is sorted by (better statistics, stable files); empty
            keeps the order the rows arrived in (tokens: the shuffle order is the content).
        row_group_rows / row_group_bytes: a row group is closed at whichever comes first
            (bytes are Arrow in-memory bytes, before compression).
        added_columns: nullable columns the schema gained after datasets of the kind were
            first written; a dataset or file without them still reads, with nulls there
            (``schemas.evolution``). Never remove a name from it.
    """

    name: str
    schema: pa.Schema
    key: str
    partition_by: str | None
    sort_by: tuple[str, ...]
    row_group_rows: int
    row_group_bytes: int
    added_columns: tuple[str, ...] = ()

    def __post_init__(self):
        for name in self.added_columns:
            # Only a nullable column can be missing from older files: their rows read as null.
            if self.schema.get_field_index(name) < 0 or not self.schema.field(name).nullable:
                raise ValueError(f"{self.name}: added column {name!r} is not a nullable column")


# 64 MiB of posts is ~125k rows (DuckDB's own row groups are 122,880): big enough for scans,
# and a writer (which holds a row group and its sorted copy) stays the same size from about
# 120k posts a day upwards.
POSTS = KindSpec(
    "posts",
    POSTS_SCHEMA,
    key="post_id",
    partition_by="created_at",
    sort_by=("created_at", "post_id"),
    row_group_rows=1_000_000,
    row_group_bytes=64 * _MiB,
    # Compliance columns (issue 14) and lang_source (issue 16): posts datasets written before
    # them still open.
    added_columns=("withheld_in_countries", "geo", "lang_source"),
)
# Clip rows carry JPEG frames (hundreds of KiB each), so a row group holds a few dozen windows.
CLIPS = KindSpec(
    "clips",
    CLIPS_SCHEMA,
    key="clip_id",
    partition_by="start_time",
    sort_by=("start_time", "clip_id"),
    row_group_rows=32,
    row_group_bytes=128 * _MiB,
    # Tesla SEI telemetry (issue 19): clips datasets written before it still open.
    added_columns=("telemetry_ext", "tags"),
)
TOKENS = KindSpec(
    "tokens",
    TOKENS_SCHEMA,
    key="example_id",
    partition_by=None,
    sort_by=(),
    row_group_rows=8192,
    row_group_bytes=64 * _MiB,
)

KINDS: dict[str, KindSpec] = {k.name: k for k in (POSTS, CLIPS, TOKENS)}


def kind_spec(kind: str | KindSpec) -> KindSpec:
    """Return the spec of ``kind`` (a name or a spec); unknown names raise ``ValueError``."""
    if isinstance(kind, KindSpec):
        return kind
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown dataset kind {kind!r}; expected one of {sorted(KINDS)}"
        ) from None
