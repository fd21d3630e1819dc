"""Every X compliance event form is recognized, counted by kind, and carried as an ``Event``.

Payloads are shaped as X sends them: the post compliance stream, the user compliance stream,
and batch compliance results for post ids (ingest sources) and user ids (--user-compliance).
"""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from transforms.posts import Event, ParseOptions, parse_source
from transforms.posts.parse import Chunk, parse_line, parse_user_compliance_line

T = "2026-11-20T08:00:00.000Z"
T_MS = 1795161600000


def post_event(name: str, pid: str, author: str = "42", **extra) -> dict:
    return {"data": {name: {"tweet": {"id": pid, "author_id": author}, "event_at": T, **extra}}}


def user_event(name: str, uid: str, **extra) -> dict:
    return {"data": {name: {"user": {"id": uid}, "event_at": T, **extra}}}


def batch_line(ident: str, reason: str = "deleted") -> dict:
    return {
        "id": ident,
        "action": "delete",
        "created_at": "2026-01-02T03:04:05.000Z",
        "redacted_at": T,
        "reason": reason,
    }


POST_STREAM = [
    post_event("delete", "101"),
    post_event("withheld", "102", withheld_in_countries=["IN", "DE", "IN"]),
    post_event("drop", "103"),
    post_event("undrop", "103"),
    post_event("tweet_edit", "105", initial_tweet_id="104", edit_tweet_ids=["104", "105"]),
]
USER_STREAM = [
    user_event("user_delete", "7"),
    user_event("user_undelete", "7"),
    user_event("user_protect", "8"),
    user_event("user_unprotect", "8"),
    user_event("user_suspend", "9"),
    user_event("user_unsuspend", "9"),
    user_event("user_withheld", "10", withheld_in_countries=["TR"]),
    user_event("scrub_geo", "11", up_to_tweet_id="500"),
    user_event("user_profile_modification", "12", profile_field="description", new_value="hi"),
]


def parse(lines: list[dict], *, user_ids: bool = False) -> Chunk:
    data = b"\n".join(orjson.dumps(x) for x in lines) + b"\n"
    chunks = list(
        parse_source(
            io.BytesIO(data),
            "mem://c.jsonl",
            ParseOptions(),
            max_line_bytes=1 << 20,
            user_ids=user_ids,
        )
    )
    assert len(chunks) == 1
    return chunks[0]


def test_post_stream_events_are_events_counted_by_kind():
    chunk = parse(POST_STREAM)
    assert chunk.deletes == ["101"]
    assert chunk.events == [
        Event("withheld", "102", T_MS, ("DE", "IN")),
        Event("drop", "103", T_MS),
        Event("undrop", "103", T_MS),
        Event("tweet_edit", "105", T_MS, ("104",)),
    ]
    assert chunk.tally == {
        "records_in": 5,
        "skipped:compliance_delete": 1,
        "skipped:compliance_withheld": 1,
        "skipped:compliance_drop": 1,
        "skipped:compliance_undrop": 1,
        "skipped:compliance_tweet_edit": 1,
    }
    assert chunk.posts.num_rows == 0 and not chunk.rejects


def test_user_stream_events_are_events_counted_by_kind():
    chunk = parse(USER_STREAM)
    assert [(e.action, e.id, e.detail) for e in chunk.events] == [
        ("user_delete", "7", ()),
        ("user_undelete", "7", ()),
        ("user_protect", "8", ()),
        ("user_unprotect", "8", ()),
        ("user_suspend", "9", ()),
        ("user_unsuspend", "9", ()),
        ("user_withheld", "10", ("TR",)),
        ("scrub_geo", "11", ("500",)),
        ("user_profile_modification", "12", ()),
    ]
    assert chunk.tally["records_in"] == len(USER_STREAM)
    assert sum(v for k, v in chunk.tally.items() if k.startswith("skipped:compliance_")) == 9


def test_an_unknown_event_is_a_counted_skip():
    chunk = parse([{"data": {"user_levitate": {"user": {"id": "1"}, "event_at": T}}}])
    assert chunk.tally == {"records_in": 1, "skipped:compliance_unknown_event": 1}
    assert not chunk.events and not chunk.rejects


def test_batch_results_in_sources_are_post_deletes():
    chunk = parse([batch_line("301"), batch_line("302", "suspended")])
    assert chunk.deletes == ["301", "302"] and not chunk.events
    assert chunk.tally == {"records_in": 2, "skipped:compliance_delete": 2}


def test_batch_results_of_user_ids_block_authors_by_reason():
    reasons = ["deleted", "deactivated", "protected", "suspended", "some_new_reason"]
    chunk = parse(
        [batch_line(str(i), r) for i, r in enumerate(reasons)]
        + [user_event("user_undelete", "0"), {"id": "9", "action": "keep"}],
        user_ids=True,
    )
    assert [(e.action, e.id, e.detail) for e in chunk.events] == [
        ("user_delete", "0", ("deleted",)),
        ("user_deactivate", "1", ("deactivated",)),
        ("user_protect", "2", ("protected",)),
        ("user_suspend", "3", ("suspended",)),
        # a reason not known here still means "remove": the safe reading
        ("user_delete", "4", ("some_new_reason",)),
        ("user_undelete", "0", ()),
    ]
    assert chunk.events[0].at == T_MS
    assert chunk.tally["skipped:compliance_unknown_action"] == 1
    assert chunk.tally["records_in"] == 7 and not chunk.deletes


def test_a_user_compliance_file_rejects_what_is_not_compliance():
    chunk = Chunk("mem://u.jsonl")
    parse_user_compliance_line(b'{"text": "a post", "created_at": "x"}', 3, chunk)
    parse_user_compliance_line(b'{"id": 5, "action": "delete", "reason": 7}', 4, chunk)
    assert [(r["locator"], r["reason"]) for r in chunk.rejects] == [
        ("line 3", "not_compliance"),
        ("line 4", "wrong_type"),
    ]
    assert "batch compliance line" in chunk.rejects[0]["message"]


@pytest.mark.parametrize(
    ("line", "reason", "message"),
    [
        (post_event("withheld", "1"), "wrong_type", "data.withheld.withheld_in_countries"),
        (user_event("scrub_geo", "1"), "missing_field", "data.scrub_geo.up_to_tweet_id"),
        ({"data": {"user_delete": {"event_at": T}}}, "missing_field", "data.user_delete.user.id"),
        (
            post_event("tweet_edit", "1", edit_tweet_ids="1"),
            "wrong_type",
            "data.tweet_edit.edit_tweet_ids",
        ),
    ],
)
def test_a_bad_event_is_one_reject_naming_the_field(line, reason, message):
    chunk = Chunk("mem://c.jsonl")
    parse_line(orjson.dumps(line), 1, chunk, ParseOptions())
    assert [(r["reason"], r["message"].split(":")[0]) for r in chunk.rejects] == [(reason, message)]
    assert chunk.counts["records_in"] == 1


def test_posts_next_to_events_are_still_posts():
    post = {"id": "1", "text": "hello", "created_at": T, "author_id": "7"}
    chunk = parse([{"data": post}, *USER_STREAM[:1], post | {"id": "2"}])
    assert chunk.posts.column("post_id").to_pylist() == ["1", "2"]
    assert len(chunk.events) == 1


def _write(path, lines: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return str(path)


def test_ingest_counts_every_event_of_both_file_kinds(tmp_path):
    from pipelines.ingest_posts import IngestPostsConfig, run
    from runners.options import beam_options

    streams = _write(tmp_path / "in" / "events.jsonl", POST_STREAM + USER_STREAM)
    users = _write(tmp_path / "users" / "job.jsonl", [batch_line("20", "suspended")])
    config = IngestPostsConfig(
        sources=(streams,), user_compliance=(users,), dataset=str(tmp_path / "ds")
    )
    report = run(config, beam_options("local", 1, ["--direct_running_mode=in_memory"]))
    assert report.status == "committed"
    assert report.records_in == len(POST_STREAM) + len(USER_STREAM) + 1
    skipped = report.skipped_by_reason
    assert skipped["compliance_user_suspend"] == 2  # one stream event, one batch line
    assert {k for k in skipped if k.startswith("compliance_")} == {
        "compliance_" + name
        for name in [
            "delete",
            "withheld",
            "drop",
            "undrop",
            "tweet_edit",
            "user_delete",
            "user_undelete",
            "user_protect",
            "user_unprotect",
            "user_suspend",
            "user_unsuspend",
            "user_withheld",
            "scrub_geo",
            "user_profile_modification",
        ]
    }
    # both files are consumed sources: an --incremental run skips them
    from catalog import Dataset

    uris = {s.uri for s in Dataset.open(str(tmp_path / "ds")).manifest().sources}
    assert {Path(u).name for u in uris} == {"events.jsonl", "job.jsonl"}
