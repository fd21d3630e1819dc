"""Nothing lost at scale, run after run: `shardsmith ingest posts` on the default runner,
repeated, half of the runs after dropping the page cache (root only; otherwise all warm).

Each run must commit (the nothing-lost guard refuses a commit that cannot account for every
record) and write exactly one row per distinct post id of the input -- counted here
independently, with orjson, from the same files. Prints one line a run and a summary; exits 1
on the first run that loses anything.

    python benchmarks/ingest_posts_no_loss.py DIR [--runs 20]   # DIR: *.jsonl (see firehose)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from catalog import Dataset

BIN = Path(sys.executable).parent / "shardsmith"


def distinct_posts(files: list[Path]) -> int:
    """Distinct post ids of twarc2 lines: each tweet and its inlined referenced tweets."""
    ids: set[str] = set()
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                tweet = orjson.loads(line)
                ids.add(tweet["id"])
                ids.update(r["id"] for r in tweet.get("referenced_tweets", ()) if "text" in r)
    return len(ids)


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a directory of *.jsonl twarc2 lines")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    files = sorted(args.data.glob("*.jsonl"))
    expected = distinct_posts(files)
    print(f"{len(files)} files, {expected:,} distinct posts expected in every run", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "posts"
        cold_runs = 0
        for run in range(1, args.runs + 1):
            cold = run % 2 == 0 and drop_page_cache()
            cold_runs += cold
            shutil.rmtree(dataset, ignore_errors=True)
            start = time.perf_counter()
            done = subprocess.run(
                [str(BIN), "ingest", "posts", str(args.data), "--to", str(dataset)],
                capture_output=True,
            )
            seconds = time.perf_counter() - start
            if done.returncode:
                print(f"run {run}: FAILED\n{done.stderr.decode()[-1500:]}")
                raise SystemExit(1)
            ds = Dataset.open(str(dataset))
            manifest = ds.manifest()
            rows = sum(pq.read_metadata(ds.path(f.path)).num_rows for f in manifest.files)
            report = manifest.report
            print(
                f"run {run:>2} ({'cold' if cold else 'warm'} cache): {seconds:6.1f} s, "
                f"read {report['records_in']:,}, written {rows:,}",
                flush=True,
            )
            if rows != expected:
                print(f"run {run}: wrote {rows:,} rows, expected {expected:,}")
                raise SystemExit(1)
    print(f"{args.runs} runs, {cold_runs} with a cold page cache: nothing lost")


if __name__ == "__main__":
    main()
