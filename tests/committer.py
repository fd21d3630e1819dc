"""A child process for the concurrency and crash tests: appends to, or half-writes, a dataset.

python committer.py append URL STORAGE_OPTIONS_JSON COUNT TAG
python committer.py write-then-hang URL STORAGE_OPTIONS_JSON COUNT TAG
"""

from __future__ import annotations

import json
import sys
import time

from tablegen import posts_table, write_data_file

from catalog import CommitRequest, Dataset, new_run_id


def append(ds: Dataset, count: int, tag: str) -> None:
    """``count`` runs, each writing one file and committing it."""
    for i in range(count):
        run_id = new_run_id()
        entry = write_data_file(ds, f"data/{run_id}-00000.parquet", posts_table(3, f"{tag}-{i}-"))
        ds.commit(CommitRequest(run_id=run_id, add=[entry], report={"tag": tag}))


def write_then_hang(ds: Dataset, count: int, tag: str, wait=lambda: time.sleep(120)) -> None:
    """Write ``count`` data files and a reject file of one run, say so, then wait to be killed."""
    run_id = new_run_id()
    for i in range(count):
        write_data_file(ds, f"data/{run_id}-{i:05d}.parquet", posts_table(3, f"{tag}-{i}-"))
    write_data_file(ds, f"rejects/{run_id}-00000.parquet", posts_table(1, f"{tag}-r-"))
    print("written", run_id, flush=True)
    wait()


def main(argv: list[str]) -> None:
    mode, url, options, count, tag = argv
    ds = Dataset.open(url, storage_options=json.loads(options))
    {"append": append, "write-then-hang": write_then_hang}[mode](ds, int(count), tag)


if __name__ == "__main__":
    main(sys.argv[1:])
