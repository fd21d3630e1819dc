"""Shard writing: WriteShards (validate, partition, write zstd Parquet, commit) against the anchor.

Anchor, measured in the same run: building the same Arrow batches and writing each one with
``pyarrow.parquet.write_table`` (zstd) in a plain loop, one process -- what a script without
shardsmith would do. The figure is anchor time / pipeline time (higher is better), for Beam's
in-process runner and for ``--runner local`` (worker processes, one per core).

    python benchmarks/shard_io.py [--rows 400000] [--batch 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from catalog import Dataset, new_run_id
from runners.options import beam_options
from schemas import POSTS
from transforms import WriteShards

T0 = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc)


def make_batch(index: int, rows: int) -> pa.Table:
    """``rows`` posts with realistic text sizes spread over five days."""
    rng = np.random.default_rng(index)
    ids = np.arange(index * rows, (index + 1) * rows)
    cols = {f.name: pa.nulls(rows, f.type) for f in POSTS.schema}
    cols["post_id"] = pa.array([str(i) for i in ids])
    seconds = rng.integers(0, 5 * 86400, rows)
    cols["created_at"] = pa.array(
        (np.datetime64(T0.replace(tzinfo=None)) + seconds.astype("timedelta64[s]")).astype(
            "datetime64[ms]"
        ),
        pa.timestamp("ms", tz="UTC"),
    )
    words = np.array(["traffic", "dashcam", "road", "東京", "#AI", "🚗", "lane", "merge"])
    cols["text"] = pa.array([" ".join(rng.choice(words, 18)) for _ in range(rows)])
    cols["like_count"] = pa.array(rng.integers(0, 1000, rows))
    cols["text_hash"] = pa.array(rng.integers(0, 2**63, rows).astype(np.uint64))
    return pa.table(cols, schema=POSTS.schema)


def anchor(out: str, batches: int, rows: int) -> float:
    start = time.perf_counter()
    for i in range(batches):
        pq.write_table(make_batch(i, rows), f"{out}/{i:05d}.parquet", compression="zstd")
    return time.perf_counter() - start


def pipeline(url: str, batches: int, rows: int, options: PipelineOptions) -> float:
    start = time.perf_counter()
    with beam.Pipeline(options=options) as p:
        (
            p
            | beam.Create(range(batches))
            | beam.Map(make_batch, rows)
            | WriteShards(url, "posts", run_id=new_run_id())
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=20_000)
    args = parser.parse_args()
    batches = args.rows // args.batch
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/anchor")
        t_anchor = anchor(f"{tmp}/anchor", batches, args.batch)
        in_process = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory"])
        t_mem = pipeline(f"{tmp}/mem", batches, args.batch, in_process)
        t_local = pipeline(f"{tmp}/local", batches, args.batch, beam_options("local", None, []))
        rows = Dataset.open(f"{tmp}/local").manifest().rows
        assert rows == args.rows, rows
    print(f"rows: {args.rows:,} in {batches} batches; cores: {os.cpu_count()}")
    print(f"anchor (pq.write_table loop):      {t_anchor:6.2f} s")
    print(f"WriteShards, in-process runner:    {t_mem:6.2f} s  ratio {t_anchor / t_mem:.2f}x")
    print(f"WriteShards, --runner local:       {t_local:6.2f} s  ratio {t_anchor / t_local:.2f}x")


if __name__ == "__main__":
    main()
