"""Tiny tables of each kind, generated for tests."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from catalog import Dataset
from catalog.parquet import read_parquet
from schemas import POSTS, FileEntry

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)


def posts_table(n: int, prefix: str = "p", start: dt.datetime = T0, step_hours: float = 7.0):
    """``n`` posts, ids ``<prefix>0..``, created every ``step_hours`` (so they span several days)."""
    cols: dict[str, list] = {f.name: [None] * n for f in POSTS.schema}
    cols["post_id"] = [f"{prefix}{i}" for i in range(n)]
    cols["created_at"] = [start + dt.timedelta(hours=step_hours * i) for i in range(n)]
    cols["text"] = [f"post number {i} from {prefix} #tag{i % 3}" for i in range(n)]
    cols["hashtags"] = [[f"tag{i % 3}"] for i in range(n)]
    cols["like_count"] = list(range(n))
    cols["text_hash"] = [i * 2654435761 % 2**64 for i in range(n)]
    return pa.table(cols, schema=POSTS.schema)


def write_data_file(ds: Dataset, rel_path: str, table: pa.Table) -> FileEntry:
    """Write ``table`` to ``rel_path`` in ``ds`` as a plain Parquet file; return its entry."""
    path = ds.path(rel_path)
    ds.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with ds.fs.open(path, "wb") as f:
        pq.write_table(table, f)
    return FileEntry(rel_path, table.num_rows, ds.fs.size(path), "sha256:test")


def read_version(ds: Dataset, version: int | None = None) -> pa.Table:
    """Every row of a version, read with plain pyarrow from its file list."""
    tables = []
    for entry in ds.files(version):
        tables.append(read_parquet(ds.fs, ds.path(entry.path)))
    return pa.concat_tables(tables) if tables else POSTS.schema.empty_table()


def clips_table(n: int, start: dt.datetime = T0) -> pa.Table:
    """``n`` ten-second windows of a two-camera session, each frame a few fake JPEG bytes."""
    from schemas import CLIPS

    rows = []
    for i in range(n):
        t = start + dt.timedelta(seconds=10 * i)
        ts = [int(t.timestamp() * 1e6) + k * 500_000 for k in range(3)]
        rows.append(
            {
                "clip_id": f"veh-1/s-1/{i:05d}",
                "vehicle_id": "veh-1",
                "session_id": "s-1",
                "start_time": t,
                "duration_s": 10.0,
                "cameras": [
                    {
                        "camera": cam,
                        "codec": "h264",
                        "width": 320,
                        "height": 240,
                        "source_fps": 10.0,
                        "frame_ts_us": ts,
                        "frames": [b"\xff\xd8" + bytes([i, k]) for k in range(3)],
                        "source_uri": f"/in/{cam}.mp4",
                        "dropped_frames": 0,
                    }
                    for cam in ("front", "rear")
                ],
                "telemetry": {
                    "ts_us": ts,
                    "speed_mps": [10.0, 10.5, 11.0],
                    "steering_deg": None,
                    "lat": [37.0] * 3,
                    "lon": [-122.0] * 3,
                    "heading_deg": [90.0] * 3,
                    "accel_mps2": [1.0] * 3,
                },
                "event": None,
                "quality": {
                    "black_fraction": 0.0,
                    "blur_score": 120.5,
                    "frozen_fraction": 0.0,
                    "camera_skew_ms": 12.0,
                    "dropped_frames": 0,
                },
            }
        )
    return pa.Table.from_pylist(rows, schema=CLIPS.schema)


def tokens_table(n: int, seq_len: int = 16) -> pa.Table:
    from schemas import TOKENS

    rows = [
        {
            "example_id": f"e{i:04d}",
            "input_ids": list(range(i, i + seq_len)),
            "doc_lens": [seq_len // 2, seq_len // 2],
            "sources": [{"dataset": "posts", "id": f"p{i}", "offset": 0, "length": seq_len // 2}],
            "media": [{"kind": "image_patches", "shape": [1, 2, 2, 3], "patches": bytes(12)}],
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=TOKENS.schema)
