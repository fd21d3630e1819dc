"""What each compliance event does to a posts dataset, end to end (``ingest posts`` runs).

Payloads are shaped as X sends them (see test_compliance_events); every run's report must
account for every record (the run checks it), and these tests check where each one went.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tablegen import read_version
from test_compliance_events import T, batch_line, post_event, user_event

from catalog import Dataset
from pipelines.ingest_posts import IngestPostsConfig, run
from runners.options import beam_options
from transforms.posts import Event
from transforms.posts.removals import build_removals


def post(pid: str, author: str, **extra) -> dict:
    return {"id": pid, "text": f"post {pid}", "created_at": T, "author_id": author, **extra}


class Runs:
    """Ingest runs into one dataset, each from its own source file."""

    def __init__(self, root: Path):
        self.root, self.dataset, self.n = root, str(root / "ds"), 0

    def ingest(self, lines: list[dict], users: list[dict] | None = None):
        self.n += 1
        src = self.root / f"in{self.n}" / "lines.jsonl"
        src.parent.mkdir(parents=True)
        src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        user_files = ()
        if users is not None:
            u = self.root / f"users{self.n}.jsonl"
            u.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in users))
            user_files = (str(u),)
        config = IngestPostsConfig(
            sources=(str(src),), user_compliance=user_files, dataset=self.dataset
        )
        report = run(config, beam_options("local", 1, ["--direct_running_mode=in_memory"]))
        assert report.status == "committed", report.message
        return report

    def rows(self) -> dict[str, dict]:
        table = read_version(Dataset.open(self.dataset))
        return {r["post_id"]: r for r in table.to_pylist()}


@pytest.fixture
def runs(tmp_path) -> Runs:
    return Runs(tmp_path)


def test_delete_and_drop_remove_posts_undrop_lets_one_in_again(runs):
    runs.ingest([post("1", "7"), post("2", "7"), post("3", "7")])
    report = runs.ingest([post_event("delete", "1"), post_event("drop", "2")])
    assert sorted(runs.rows()) == ["3"]
    assert report.info["committed_rows_deleted"] == 2
    # dropped and undropped in one run: the later event wins, the post comes in
    report = runs.ingest(
        [post_event("undrop", "2"), post("2", "7"), post("4", "7"), post_event("drop", "4")]
    )
    assert sorted(runs.rows()) == ["2", "3"]
    assert report.deleted_by_reason == {"drop": 1} and report.records_deleted == 1


def test_user_delete_removes_every_post_of_the_author_undelete_lifts_it(runs):
    runs.ingest([post("1", "7"), post("2", "7"), post("3", "8")])
    report = runs.ingest([user_event("user_delete", "7"), post("4", "7"), post("5", "8")])
    assert sorted(runs.rows()) == ["3", "5"]
    assert report.deleted_by_reason == {"user_delete": 1}  # this run's post 4
    assert report.info["committed_rows_deleted:user_delete"] == 2  # posts 1 and 2
    report = runs.ingest([user_event("user_undelete", "7"), post("6", "7")])
    assert sorted(runs.rows()) == ["3", "5", "6"]  # posts removed earlier do not come back
    assert report.records_deleted == 0


def test_a_user_batch_file_removes_the_posts_of_each_account_by_reason(runs):
    runs.ingest([post("1", "7"), post("2", "8"), post("3", "9")])
    report = runs.ingest(
        [post("4", "9"), post("5", "10")],
        users=[batch_line("7", "suspended"), batch_line("9", "deactivated")],
    )
    assert sorted(runs.rows()) == ["2", "5"]
    assert report.deleted_by_reason == {"user_deactivate": 1}
    assert report.info["committed_rows_deleted:user_suspend"] == 1
    assert report.info["committed_rows_deleted:user_deactivate"] == 1
    assert report.skipped_by_reason == {
        "compliance_user_suspend": 1,
        "compliance_user_deactivate": 1,
    }


def test_protect_and_suspend_block_until_lifted_in_event_time_order(runs):
    later = "2026-11-21T08:00:00.000Z"
    unprotect = user_event("user_unprotect", "7")
    unprotect["data"]["user_unprotect"]["event_at"] = later
    # the lifting event comes first in the file but later in time: the author stays unblocked
    report = runs.ingest([unprotect, user_event("user_protect", "7"), post("1", "7")])
    assert sorted(runs.rows()) == ["1"] and report.records_deleted == 0
    report = runs.ingest([user_event("user_suspend", "8"), post("2", "8"), post("3", "9")])
    assert sorted(runs.rows()) == ["1", "3"]
    assert report.deleted_by_reason == {"user_suspend": 1}


def test_withheld_events_and_fields_fill_the_countries_column(runs):
    runs.ingest(
        [
            post("1", "7"),
            post("2", "8", withheld={"copyright": False, "country_codes": ["FR"]}),
            post("3", "9"),
        ]
    )
    runs.ingest(
        [
            post_event("withheld", "1", withheld_in_countries=["IN", "DE"]),
            user_event("user_withheld", "8", withheld_in_countries=["TR"]),
            post("4", "8"),
        ]
    )
    rows = runs.rows()
    assert {pid: r["withheld_in_countries"] for pid, r in rows.items()} == {
        "1": ["DE", "IN"],
        "2": ["FR", "TR"],
        "3": None,
        "4": ["TR"],
    }
    # every other column of a rewritten row is as it was
    assert rows["1"]["text"] == "post 1" and rows["1"]["source_line"] == 1


def test_scrub_geo_nulls_geo_up_to_the_event_post(runs):
    geo = {
        "place_id": "01a9a39529b27f36",
        "coordinates": {"type": "Point", "coordinates": [2.3, 48.8]},
    }
    runs.ingest(
        [post("400", "11", geo=geo), post("600", "11", geo=geo), post("450", "12", geo=geo)]
    )
    assert runs.rows()["400"]["geo"] == {"place_id": "01a9a39529b27f36", "coordinates": [2.3, 48.8]}
    runs.ingest([user_event("scrub_geo", "11", up_to_tweet_id="500"), post("300", "11", geo=geo)])
    rows = runs.rows()
    assert {pid: r["geo"] is None for pid, r in rows.items()} == {
        "300": True,
        "400": True,
        "450": False,
        "600": False,
    }


def test_tweet_edit_removes_the_versions_before_the_latest(runs):
    runs.ingest([post("104", "7", edit_history_ids=["104"]), post("200", "7")])
    report = runs.ingest(
        [
            post_event("tweet_edit", "105", initial_tweet_id="104", edit_tweet_ids=["104", "105"]),
            post("104", "7", edit_history_ids=["104"]),  # the old version again: not kept
        ]
    )
    assert sorted(runs.rows()) == ["200"]
    assert report.info["committed_rows_deleted:tweet_edit"] == 1
    assert report.deleted_by_reason == {"tweet_edit": 1}
    runs.ingest([post("105", "7", edit_history_ids=["104", "105"])])
    assert sorted(runs.rows()) == ["105", "200"]


def test_profile_modifications_are_counted_and_change_nothing(runs):
    runs.ingest([post("1", "7")])
    report = runs.ingest(
        [user_event("user_profile_modification", "7", profile_field="name", new_value="x")]
    )
    assert report.skipped_by_reason == {"compliance_user_profile_modification": 1}
    assert sorted(runs.rows()) == ["1"] and report.operation == "append"


# ----------------------------------------------------------------------------- the state alone


def test_the_state_applies_events_in_time_order_on_top_of_the_prior_one():
    first = build_removals(["1"], [Event("user_delete", "7", 5), Event("drop", "2", 1)])
    assert first.posts == {"1": "delete", "2": "drop"} and first.authors == {"7": "user_delete"}
    assert first.new_authors == {"7"}
    later = build_removals(
        [],
        [Event("user_undelete", "7", 9), Event("undrop", "2", 9), Event("undrop", "1", 9)],
        first,
    )
    # an undrop never brings back a deleted post
    assert later.posts == {"1": "delete"} and later.authors == {} and not later.new_authors
    both = build_removals([], [Event("user_suspend", "8", 3), Event("user_protect", "8", 4)])
    lifted = build_removals([], [Event("user_unprotect", "8", 6)], both)
    assert lifted.authors == {"8": "user_suspend"}  # still suspended
