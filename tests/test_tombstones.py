"""Tombstones: every removal a posts dataset applied is stored with its version and applied by
every later ingest -- a delete that arrives before its post, a blocked author's later posts."""

from __future__ import annotations

import pyarrow as pa
from test_compliance_actions import Runs, post
from test_compliance_events import batch_line, post_event, user_event

from catalog import Dataset
from catalog.tombstones import read_tombstones
from schemas import TOMBSTONES_SCHEMA
from transforms.posts import Event
from transforms.posts.removals import build_removals
from transforms.posts.tombstones import removals_from_rows, tombstone_rows


def _tombstones(runs: Runs, since: int = 0) -> list[tuple]:
    """(version, target, id, state) of the tombstone rows added after version ``since``."""
    table = read_tombstones(Dataset.open(runs.dataset), since=since)
    assert table.schema.remove(table.schema.get_field_index("version")).equals(TOMBSTONES_SCHEMA)
    columns = ("version", "target", "id", "state")
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def test_a_delete_before_its_post_removes_the_post_in_a_later_run(tmp_path):
    runs = Runs(tmp_path)
    # a stream delete, a drop and a batch compliance result (post ids: an ingest source)
    runs.ingest(
        [post_event("delete", "9"), post_event("drop", "8"), batch_line("10"), post("1", "7")]
    )
    assert _tombstones(runs) == [
        (1, "post", "10", "delete"),
        (1, "post", "8", "drop"),
        (1, "post", "9", "delete"),
    ]
    report = runs.ingest([post("9", "7"), post("8", "7"), post("10", "7"), post("2", "7")])
    assert sorted(runs.rows()) == ["1", "2"]
    assert report.deleted_by_reason == {"tombstone": 3}
    # a later version of the deleted post is the same post: removed too
    report = runs.ingest([post("19", "7", edit_history_ids=["9", "19"])])
    assert report.deleted_by_reason == {"tombstone": 1} and sorted(runs.rows()) == ["1", "2"]
    # an undrop is stored too: the dropped post comes in afterwards
    runs.ingest([post_event("undrop", "8")])
    report = runs.ingest([post("8", "7")])
    assert sorted(runs.rows()) == ["1", "2", "8"] and report.records_deleted == 0
    assert _tombstones(runs, since=3) == [(4, "post", "8", "lifted")]


def test_user_delete_then_undelete_across_runs(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest([user_event("user_delete", "7"), post("1", "8")])
    report = runs.ingest([post("2", "7"), post("3", "7"), post("4", "8")])
    assert sorted(runs.rows()) == ["1", "4"]
    assert report.deleted_by_reason == {"tombstone": 2}
    runs.ingest([user_event("user_undelete", "7")])
    report = runs.ingest([post("5", "7")])
    assert sorted(runs.rows()) == ["1", "4", "5"] and report.records_deleted == 0
    assert _tombstones(runs) == [(1, "author", "7", "user_delete"), (3, "author", "7", "lifted")]


def test_a_batch_user_file_blocks_authors_for_later_runs(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest([], users=[batch_line("7", "protected")])
    report = runs.ingest([post("1", "7"), post("2", "8")])
    assert sorted(runs.rows()) == ["2"] and report.deleted_by_reason == {"tombstone": 1}


def test_withheld_and_scrub_geo_before_the_posts_arrive(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest(
        [
            post_event("withheld", "1", withheld_in_countries=["DE"]),
            user_event("user_withheld", "8", withheld_in_countries=["TR"]),
            user_event("scrub_geo", "9", up_to_tweet_id="500"),
        ]
    )
    geo = {"place_id": "p", "coordinates": {"type": "Point", "coordinates": [1.0, 2.0]}}
    runs.ingest(
        [post("1", "7"), post("2", "8"), post("400", "9", geo=geo), post("600", "9", geo=geo)]
    )
    rows = runs.rows()
    assert rows["1"]["withheld_in_countries"] == ["DE"]
    assert rows["2"]["withheld_in_countries"] == ["TR"]
    assert rows["400"]["geo"] is None and rows["600"]["geo"]["place_id"] == "p"


def test_a_run_that_changes_no_state_writes_no_tombstones(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest([post_event("delete", "9")])
    runs.ingest([post("1", "7"), post_event("delete", "9")])  # the same delete again
    ds = Dataset.open(runs.dataset)
    assert [e.version for e in ds.manifest().tombstones] == [1]


def test_tombstone_rows_replay_to_the_state_they_record():
    events = [
        Event("user_suspend", "8", 3),
        Event("user_protect", "8", 4),
        Event("drop", "2", 1),
        Event("tweet_edit", "5", 1, ("4",)),
        Event("withheld", "6", 1, ("DE",)),
        Event("scrub_geo", "9", 1, ("77",)),
    ]
    first = build_removals(["1"], events)
    second = build_removals([], [Event("user_unprotect", "8", 9), Event("undrop", "2", 9)], first)
    tables = [
        tombstone_rows(build_removals([], []), first, "r1"),
        tombstone_rows(first, second, "r2"),
    ]
    assert all(t.schema.equals(TOMBSTONES_SCHEMA) for t in tables)
    replayed = removals_from_rows(tables)
    for name in ("posts", "superseded", "authors", "held", "withheld_posts", "scrub_geo"):
        assert getattr(replayed, name) == getattr(second, name), name
    assert replayed.authors == {"8": "user_suspend"} and replayed.posts == {"1": "delete"}
    assert tables[1].column("state").to_pylist() == ["lifted", "user_suspend"]
    assert removals_from_rows([pa.concat_tables(tables[:1])]).authors == {"8": "user_protect"}


def test_inspect_counts_and_query_reads_the_tombstones(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    runs = Runs(tmp_path)
    runs.ingest([post_event("delete", "9"), user_event("user_suspend", "7"), post("1", "8")])
    runs.ingest([user_event("user_unsuspend", "7"), post_event("drop", "5")])
    shardsmith = str(Path(sys.executable).parent / "shardsmith")

    def cli(*args: str) -> str:
        done = subprocess.run([shardsmith, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    summary = json.loads(cli("inspect", runs.dataset, "--json"))
    assert summary["posts"]["tombstones"] == [
        {"target": "author", "state": "lifted", "keys": 1},
        {"target": "post", "state": "delete", "keys": 1},
        {"target": "post", "state": "drop", "keys": 1},
    ]
    sql = "SELECT version, target, id, state FROM tombstones ORDER BY version, id"
    out = cli("query", runs.dataset, sql, "--format", "csv")
    assert [line.replace('"', "") for line in out.splitlines()] == [
        "version,target,id,state",
        "1,author,7,user_suspend",
        "1,post,9,delete",
        "2,post,5,drop",
        "2,author,7,lifted",
    ]
    # pinned at version 1, the view holds what version 1 held
    one = json.loads(cli("inspect", runs.dataset, "--version", "1", "--json"))
    assert {(r["target"], r["state"]) for r in one["posts"]["tombstones"]} == {
        ("author", "user_suspend"),
        ("post", "delete"),
    }
