"""``ingest posts`` at the scale where the default runner used to lose records in flight.

Before the rows were staged (catalog.staging), every parsed row crossed Beam's data plane twice
and the local runner held them all in memory; at 500k+ realistic lines, runs sometimes lost
the output of a few parse chunks on the way and the nothing-lost guard refused the commit
(5 of 17 runs). This runs the CLI as a user would on 500,000 realistic twarc2 lines (3.2 GB,
20 files) with the default runner, and checks every post arrived: the posts written are
exactly the distinct post ids of the input, counted here with orjson.
"""

from __future__ import annotations

import subprocess
import sys
from multiprocessing import Pool
from pathlib import Path

import orjson
import pytest

from catalog import Dataset
from transforms.samples.firehose import write_firehose

BIN = Path(sys.executable).parent / "shardsmith"


def _ids(path: str) -> set[str]:
    ids = set()
    with open(path, "rb") as f:
        for line in f:
            tweet = orjson.loads(line)
            ids.add(tweet["id"])
            ids.update(ref["id"] for ref in tweet.get("referenced_tweets", ()))
    return ids


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_half_a_million_lines_on_the_default_runner_lose_nothing(tmp_path):
    files = write_firehose(str(tmp_path / "in"), lines=500_000, files=20)
    done = subprocess.run(
        [str(BIN), "ingest", "posts", str(tmp_path / "in"), "--to", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with Pool(2) as pool:
        distinct = set().union(*pool.map(_ids, files))
    report = Dataset.open(str(tmp_path / "ds")).manifest().report
    assert report["records_written"] == len(distinct)
    assert report["records_in"] == report["records_written"] + report["records_deduplicated"]
    assert not list((tmp_path / "ds").glob("_staging/*")), "the staging area was not removed"
