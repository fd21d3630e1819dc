"""A run whose counts do not add up fails with one line naming the counts (and the worker log),
commits nothing."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("said", [b"", b"a worker's last words\n"], ids=["silent", "said"])
def test_a_failed_run_names_its_worker_log_only_when_it_holds_something(
    tmp_path, monkeypatch, capfd, said
):
    logs = tmp_path / "tmp"
    logs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(logs))
    url = str(tmp_path / "posts")
    Dataset.create(url, "posts")

    def fail(_):
        os.write(2, said)  # in process, descriptor 2 is the worker log
        raise ValueError("a step failed")

    def build(p):
        return p | beam.Create([1]) | beam.Map(fail)

    options = beam_options("local", 1, ["--direct_running_mode=in_memory"])
    with pytest.raises(ValueError, match="a step failed"):
        run_pipeline(build, options, dataset=url, run_id=new_run_id(), base_version=0)
    kept = list(logs.iterdir())
    if said:
        assert len(kept) == 1 and kept[0].read_bytes() == said
        assert f"worker output is in {kept[0]}" in capfd.readouterr().err
    else:
        assert kept == []  # an empty log tells nothing: removed, not named
        assert "worker output is in" not in capfd.readouterr().err
