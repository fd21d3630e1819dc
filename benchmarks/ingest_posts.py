"""Post ingestion: posts/s of `ingest posts` against orjson parsing the same lines.

Anchor, measured in the same run: the same source files read and decompressed, and every line
parsed with ``orjson.loads`` (nothing else), over as many processes as the pipeline has
workers, one file per task. The figure is anchor time / pipeline time (higher is better;
DESIGN.md §7 target: >= 0.5x). The pipeline does everything: parsing, joining includes,
cleaning, entities, dedup, edits, deletes, Parquet writing and the commit.

    python benchmarks/ingest_posts.py [--posts 30000] [--samples 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from multiprocessing import Pool

import orjson

from pipelines.ingest_posts import IngestPostsConfig, run
from runners.options import beam_options
from transforms.posts.lines import open_decompressed, read_lines
from transforms.samples import PostsSampleConfig, generate_posts_sample


def parse_only(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in read_lines(open_decompressed(f), 16 << 20):
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(line.data)
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=30_000, help="posts per sample")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.samples):
            cfg = PostsSampleConfig(posts=args.posts, users=500, days=30, seed=seed)
            generate_posts_sample(f"{tmp}/in/s{seed}", cfg)
        files = sorted(
            os.path.join(d, f)
            for d, _, names in os.walk(f"{tmp}/in")
            for f in names
            if not f.startswith("_")
        )
        size = sum(os.path.getsize(f) for f in files)
        start = time.perf_counter()
        with Pool(args.workers) as pool:
            lines = sum(pool.map(parse_only, files, chunksize=1))
        t_anchor = time.perf_counter() - start

        config = IngestPostsConfig(sources=(f"{tmp}/in",), dataset=f"{tmp}/posts")
        start = time.perf_counter()
        report = run(config, beam_options("local", args.workers, []))
        t_pipeline = time.perf_counter() - start
    print(
        f"input: {len(files)} files, {size / 2**20:.1f} MiB, {lines:,} lines, "
        f"{report.records_in:,} records; workers: {args.workers}"
    )
    print(
        f"anchor (orjson parse only): {t_anchor:6.2f} s  {report.records_in / t_anchor:9,.0f} records/s"
    )
    print(
        f"ingest posts pipeline:      {t_pipeline:6.2f} s  {report.records_in / t_pipeline:9,.0f} records/s"
        f"  ratio {t_anchor / t_pipeline:.2f}x"
    )
    print(
        f"written {report.records_written:,}, deduplicated {report.records_deduplicated:,}, "
        f"rejected {report.records_rejected:,}"
    )


if __name__ == "__main__":
    main()
