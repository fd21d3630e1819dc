"""A run whose counts do not add up fails with one line naming the counts (and the worker log),
commits nothing."""

from __future__ import annotations

import tempfile

import apache_beam as beam
import pytest
from tablegen import posts_table

from catalog import Dataset, new_run_id
from runners.errors import RecordsLost
from runners.execute import run_pipeline
from runners.options import beam_options
from transforms import WriteShards


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "worker-processes"])
def test_a_lost_record_is_one_line_and_nothing_is_committed(tmp_path, workers):
    url = str(tmp_path / "posts")
    run_id = new_run_id()
    Dataset.create(url, "posts")

    def build(p):
        inputs = {
            "data": p | "Rows" >> beam.Create([posts_table(3)]),
            # Four records read, three written: one is unaccounted for.
            "tallies": p | "Counts" >> beam.Create([{"records_in": 4}]),
        }
        return inputs | WriteShards(url, "posts", run_id=run_id)

    flags = ["--direct_running_mode=in_memory"] if workers == 1 else []
    with pytest.raises(RecordsLost) as caught:
        run_pipeline(
            build, beam_options("local", workers, flags), dataset=url, run_id=run_id, base_version=0
        )
    message = str(caught.value)
    assert "\n" not in message
    assert f"run {run_id}: read 4 records but accounted for 3 (written 3," in message
    assert "nothing committed" in message
    assert Dataset.open(url).latest_version() == 0


def test_the_worker_log_stays_when_a_run_fails_and_goes_when_it_succeeds(tmp_path, monkeypatch):
    logs = tmp_path / "tmp"
    logs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(logs))
    url = str(tmp_path / "posts")
    Dataset.create(url, "posts")
    options = beam_options("local", 1, ["--direct_running_mode=in_memory"])

    def run(records_in: int) -> str:
        run_id = new_run_id()

        def build(p):
            inputs = {
                "data": p | "Rows" >> beam.Create([posts_table(3)]),
                "tallies": p | "Counts" >> beam.Create([{"records_in": records_in}]),
            }
            return inputs | WriteShards(url, "posts", run_id=run_id)

        run_pipeline(build, options, dataset=url, run_id=run_id, base_version=0)
        return run_id

    with pytest.raises(RecordsLost) as caught:
        run(4)
    kept = sorted(p.name for p in logs.iterdir())
    assert len(kept) == 1 and str(logs / kept[0]) in str(caught.value)
    run(3)
    assert sorted(p.name for p in logs.iterdir()) == kept  # the failed run's only
