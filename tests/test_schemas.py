"""Schemas, validation and the manifest formats."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from tablegen import posts_table

from schemas import (
    CLIPS,
    KINDS,
    MAX_PAYLOAD_BYTES,
    POSTS,
    REJECTS_SCHEMA,
    TOKENS,
    DatasetInfo,
    FileEntry,
    Manifest,
    ManifestError,
    SchemaError,
    SourceEntry,
    check_relative_path,
    conform_table,
    kind_spec,
    manifest_name,
    parse_manifest_name,
    reject_table,
)


def test_column_names_are_the_contract():
    assert POSTS.schema.names == [
        "post_id",
        "created_at",
        "author_id",
        "author_username",
        "text",
        "lang",
        "lang_source",
        "conversation_id",
        "reply_to_post_id",
        "quoted_post_id",
        "reposted_post_id",
        "hashtags",
        "mentions",
        "cashtags",
        "urls",
        "media",
        "like_count",
        "repost_count",
        "reply_count",
        "quote_count",
        "possibly_sensitive",
        "withheld_in_countries",
        "geo",
        "edit_history_ids",
        "text_hash",
        "source_uri",
        "source_line",
    ]
    assert CLIPS.schema.names == [
        "clip_id",
        "vehicle_id",
        "session_id",
        "start_time",
        "duration_s",
        "cameras",
        "telemetry",
        "event",
        "quality",
        "telemetry_ext",
        "tags",
    ]
    assert TOKENS.schema.names == ["example_id", "input_ids", "doc_lens", "sources", "media"]
    assert POSTS.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert CLIPS.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert POSTS.schema.field("text_hash").type == pa.uint64()
    camera = CLIPS.schema.field("cameras").type.value_type
    assert [f.name for f in camera] == [
        "camera",
        "codec",
        "width",
        "height",
        "source_fps",
        "frame_ts_us",
        "frames",
        "source_uri",
        "dropped_frames",
    ]
    assert camera.field("frames").type == pa.list_(pa.binary())
    assert TOKENS.schema.field("input_ids").type == pa.list_(pa.int32())
    assert set(KINDS) == {"posts", "clips", "tokens"}
    with pytest.raises(ValueError, match="unknown dataset kind 'videos'"):
        kind_spec("videos")


def test_conform_accepts_any_column_order():
    table = posts_table(3)
    shuffled = table.select(list(reversed(table.column_names)))
    assert conform_table(shuffled, "posts").equals(table)
    assert conform_table(table.to_batches()[0], POSTS).schema == POSTS.schema


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["lang"]), "column 'lang': missing; expected type string"),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("like_count"),
                "like_count",
                t.column("like_count").cast(pa.int32()),
            ),
            "column 'like_count': found type int32, expected type int64",
        ),
        (
            lambda t: t.append_column("extra", pa.array([1, 2, 3])),
            "column 'extra': not in the schema",
        ),
        (
            lambda t: t.set_column(0, "post_id", pa.array(["a", None, "c"])),
            "column 'post_id': found 1 nulls, expected type string not null",
        ),
        (
            lambda t: t.set_column(
                1, "created_at", t.column("created_at").cast(pa.timestamp("us", tz="UTC"))
            ),
            r"column 'created_at': found type timestamp\[us, tz=UTC\], expected type "
            r"timestamp\[ms, tz=UTC\]",
        ),
    ],
)
def test_conform_names_column_found_and_expected(change, message):
    with pytest.raises(SchemaError, match=message):
        conform_table(change(posts_table(3)), "posts")


def test_reject_table_truncates_payload_and_fills_run_id():
    table = reject_table(
        [
            {
                "source_uri": "a.jsonl",
                "locator": "line 3",
                "reason": "json_invalid",
                "message": "Expecting value",
                "payload": b"x" * (MAX_PAYLOAD_BYTES + 10),
            },
            {"source_uri": "b.jsonl", "locator": "line 1", "reason": "bad", "payload": "é"},
        ],
        run_id="r1",
    )
    assert table.schema == REJECTS_SCHEMA
    assert len(table.column("payload")[0].as_py()) == MAX_PAYLOAD_BYTES
    assert table.column("payload")[1].as_py() == "é".encode()
    assert table.column("run_id").to_pylist() == ["r1", "r1"]
    assert table.column("message")[1].as_py() == "bad"


def test_manifest_round_trip():
    m = Manifest(
        version=3,
        parent_version=2,
        run_id="r",
        created_at="2026-11-21T00:00:00.000Z",
        operation="delete",
        files=(FileEntry("data/dt=2026-11-20/r-00000.parquet", 5, 100, "sha256:ab"),),
        rejects=(FileEntry("rejects/r-00000.parquet", 1, 10, "sha256:cd"),),
        sources=(SourceEntry("s3://b/in.jsonl", 9, "2026-11-20T00:00:00Z", "etag"),),
        report={"records_in": 6},
        config={"seed": 1},
        properties={"seq_len": 2048},
    )
    assert Manifest.from_json(m.to_json(), "m") == m
    assert m.rows == 5 and m.bytes == 100
    doc = json.loads(m.to_json())
    doc["operation"] = "upsert"
    with pytest.raises(ManifestError, match="operation 'upsert'"):
        Manifest.from_json(json.dumps(doc).encode(), "m")
    with pytest.raises(ManifestError, match="m: not valid JSON"):
        Manifest.from_json(b"{", "m")


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "/abs/data/x",
        "data/../../x",
        "data//x",
        "data/./x",
        "manifests/v1.json",
        "",
        "s3://bucket/data/x",
        "data\\x",
    ],
)
def test_unsafe_paths_are_refused(path):
    with pytest.raises(ManifestError):
        check_relative_path(path)


def test_safe_paths_and_manifest_names():
    assert check_relative_path("data/dt=2026-11-21/r-00001.parquet")
    assert check_relative_path("rejects/r-00000.parquet")
    assert manifest_name(12) == "v00000012.json"
    assert parse_manifest_name("manifests/v00000012.json") == 12
    assert parse_manifest_name(".tmp-abc") is None


def test_dataset_info_round_trip():
    info = DatasetInfo(kind="clips", created_at="2026-11-21T00:00:00.000Z", schema=CLIPS.schema)
    back = DatasetInfo.from_json(info.to_json(), "x")
    assert back.schema.equals(CLIPS.schema) and back.kind == "clips"
    assert json.loads(info.to_json())["partitioning"] == ["dt"]
    with pytest.raises(ManifestError, match=r"not a shardsmith dataset\.json"):
        DatasetInfo.from_json(b'{"kind": "posts", "format_version": 1}', "x")
