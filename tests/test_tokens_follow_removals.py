"""Compliance removals reach ``tokens`` (issue 14, item 3): after an ingest deletes a post and
blocks an author, ``tokenize`` (``--incremental`` or plain) re-packs the examples that held
their posts, rewriting only the files that held them, as a ``delete`` version whose report
counts what went; every token left still round-trips through ``sources`` to its post's text.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from test_compliance_actions import Runs, post
from test_compliance_events import post_event, user_event
from test_tokenize import _clips, _commit, _examples, _expected_docs, _reassemble, in_process

from catalog import Dataset, RetentionPolicy, expire_versions
from pipelines.tokenize import TokenizeConfig, run
from schemas import TOKENS
from transforms.tokenize import RepackOptions, example_id, load_tokenizer, repack_without

BIN = Path(sys.executable).parent / "shardsmith"
SENTENCE = "the bridge traffic this morning is wild again and nobody moves at all today"
WORDS = SENTENCE.split(" ")
BLOCKED = "8"  # user_delete: posts 4 and 11
DELETED = "2"  # post delete


def _author(i: int) -> str:
    return BLOCKED if i in (4, 11) else "79"[i % 2]


def _text(i: int) -> str:
    return f"post {i}: " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 9))


def _posts(ids) -> list[dict]:
    return [post(str(i), _author(i), text=_text(i)) for i in ids]


def _removed_ids() -> set[str]:
    return {DELETED} | {str(i) for i in range(1, 19) if _author(i) == BLOCKED}


def _tokenize(posts_url: str, out: Path, **kw):
    kw = {"seq_len": 16, "shards": 8, **kw}
    report = run(TokenizeConfig(inputs=(posts_url,), dataset=str(out), **kw), in_process())
    return report, Dataset.open(str(out))


def _ids_by_file(tokens: Dataset, version: int) -> dict[str, set[str]]:
    out = {}
    for f in tokens.files(version):
        out[f.path] = {s["id"] for ex in _examples_of(tokens, f.path) for s in ex["sources"]}
    return out


def _examples_of(tokens: Dataset, path: str) -> list[dict]:
    from catalog.parquet import read_parquet

    return read_parquet(tokens.fs, tokens.path(path)).to_pylist()


def _check_round_trip(posts: Dataset, examples: list[dict]) -> set[str]:
    """Every document's pieces, in offset order, are its post's tokens exactly once; the
    documents are exactly the posts of the latest posts version. Returns their ids."""
    expected = _expected_docs(posts, None, load_tokenizer())
    pieces = _reassemble(examples)
    assert set(pieces) == set(expected)
    for key, parts in pieces.items():
        parts.sort(key=lambda p: p[0])
        at, tokens = 0, []
        for offset, ids, _ in parts:
            assert offset == at, f"{key}: a piece at {offset}, expected {at}"
            tokens += ids
            at += len(ids)
        assert tokens == expected[key], key
    for ex in examples:
        assert 0 < len(ex["input_ids"]) <= 16
    assert len({ex["example_id"] for ex in examples}) == len(examples)
    return {doc_id for _, doc_id in pieces}


def _ingest_and_tokenize(tmp_path: Path, **kw):
    runs = Runs(tmp_path)
    runs.ingest(_posts(range(1, 17)))
    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", **kw)
    assert report.status == "committed" and tokens.latest_version() == 1
    return runs, tokens


def _compliance(runs: Runs):
    runs.ingest(
        [post_event("delete", DELETED), user_event("user_delete", BLOCKED), *_posts([17, 18])]
    )


def test_incremental_tokenize_repacks_only_the_files_that_held_removed_posts(tmp_path):
    runs, tokens = _ingest_and_tokenize(tmp_path)
    before = _ids_by_file(tokens, 1)
    removed = _removed_ids() - {"17", "18"}
    affected = {p for p, ids in before.items() if ids & removed}
    # guards: the removal must touch some files and leave others alone
    assert affected and set(before) - affected
    examples_v1 = _examples(tokens, 1)
    _compliance(runs)

    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", incremental=True)
    assert report.status == "committed" and tokens.latest_version() == 3
    deleting = tokens.manifest(2)
    assert deleting.operation == "delete" and tokens.manifest(3).operation == "append"
    live = {f.path for f in deleting.files}
    assert live & affected == set()
    assert set(before) - affected <= live  # untouched files are still the same files
    v1 = {f.path: f for f in tokens.manifest(1).files}
    assert all(v1[f.path] == f for f in deleting.files if f.path in v1)

    # the report counts what went, exactly
    spans_out = [[s["id"] in removed for s in ex["sources"]] for ex in examples_v1]
    gone_examples = sum(all(s) for s in spans_out)
    repacked = sum(any(s) and not all(s) for s in spans_out)
    tokens_out = sum(s["length"] for ex in examples_v1 for s in ex["sources"] if s["id"] in removed)
    r = deleting.report
    assert r["records_in"] == sum(len(_examples_of(tokens, p)) for p in affected)
    assert r["records_deleted"] == gone_examples
    assert r["deleted_by_reason"] == {"compliance": gone_examples}
    assert r["info"]["examples_repacked"] == repacked and repacked > 0
    assert r["info"]["tokens_removed"] == tokens_out
    assert r["info"]["documents_removed"] == len(removed)
    # the block resolved against the posts version the tokens were read from: posts 4, 11
    assert r["info"]["removals_author_posts"] == 2 and r["info"]["removals_posts"] == 1
    assert deleting.properties["applied"] == {runs.dataset: 2}

    # no token of a removed post in the latest version; everything else exactly once
    latest = _examples(tokens)
    assert not {s["id"] for ex in latest for s in ex["sources"]} & _removed_ids()
    posts = Dataset.open(runs.dataset)
    held = _check_round_trip(posts, latest)
    assert held == {str(i) for i in range(1, 19)} - _removed_ids()
    # the posts the compliance ingest carried into a new file were not tokenized again
    assert report.skipped_by_reason == {"already_tokenized": 16 - len(removed)}
    m = tokens.manifest()
    assert m.properties["total_tokens"] == sum(len(ex["input_ids"]) for ex in latest)
    assert m.properties["total_examples"] == len(latest)
    assert m.properties["total_documents"] == len(held)

    # nothing more to apply: the next run changes nothing
    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", incremental=True)
    assert report.status == "nothing-new" and tokens.latest_version() == 3


def test_plain_tokenize_in_pad_mode_removes_the_examples_of_removed_posts(tmp_path):
    runs, tokens = _ingest_and_tokenize(tmp_path, pack="pad")
    _compliance(runs)
    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", pack="pad")
    assert report.status == "committed" and "version 2" in report.message
    deleting = tokens.manifest(2)
    # one document per example: each removed post's example goes, none is re-packed
    assert deleting.operation == "delete"
    assert deleting.report["deleted_by_reason"] == {"compliance": 3}
    assert deleting.report["info"].get("examples_repacked", 0) == 0
    kept = _examples(tokens, 2)
    assert not {s["id"] for ex in kept for s in ex["sources"]} & _removed_ids()
    assert len(kept) == 16 - 3 and all(len(ex["input_ids"]) == 16 for ex in kept)
    # a plain run tokenizes the posts version it reads again, which has none of them either
    latest = _examples(tokens)
    assert not {s["id"] for ex in latest for s in ex["sources"]} & _removed_ids()
    assert len(latest) == 2 * 13 + 2


def test_an_author_block_reaches_tokens_after_gc_expired_the_version_read(tmp_path):
    runs, tokens = _ingest_and_tokenize(tmp_path)
    _compliance(runs)
    posts = Dataset.open(runs.dataset)
    expire_versions(posts, RetentionPolicy(keep_versions=1))
    assert posts.versions()[0] == 2  # the version the tokens were read from is gone
    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", incremental=True)
    assert report.status == "committed"
    info = tokens.manifest(2).report["info"]
    # resolved as the held posts the latest posts version lacks: post 2 (deleted) too
    assert info["removals_author_posts"] == 3 and info["documents_removed"] == 3
    latest = _examples(tokens)
    assert not {s["id"] for ex in latest for s in ex["sources"]} & _removed_ids()
    assert (
        _check_round_trip(Dataset.open(runs.dataset), latest)
        == {str(i) for i in range(1, 19)} - _removed_ids()
    )


def _cli(args: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("SHARDSMITH_FAULT", None)
    if fault:
        env["SHARDSMITH_FAULT"] = fault
    return subprocess.run(
        [str(BIN), *args, "--direct_running_mode=in_memory"],
        env=env,
        start_new_session=True,  # the fault kills its whole process group, never pytest
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("fault", ["before-commit", "after-commit"])
def test_sigkill_during_propagation_then_a_rerun_finishes(tmp_path, fault):
    runs, tokens = _ingest_and_tokenize(tmp_path)
    _compliance(runs)
    args = ["tokenize", runs.dataset, "--to", str(tmp_path / "tokens"), "--incremental"]
    args += ["--seq-len", "16", "--shards", "8"]
    killed = _cli(args, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    tokens = Dataset.open(str(tmp_path / "tokens"))
    # killed at the removal step's commit: before it, version 1 stays the latest; after it,
    # version 2 (the delete) is, and the tokenize itself has not committed
    assert tokens.latest_version() == (1 if fault == "before-commit" else 2)
    for v in tokens.versions():
        for f in tokens.files(v):
            assert tokens.fs.exists(tokens.path(f.path))
        _examples(tokens, v)  # every committed version reads
    done = _cli(args)
    assert done.returncode == 0, done.stderr
    tokens = Dataset.open(str(tmp_path / "tokens"))
    assert [tokens.manifest(v).operation for v in tokens.versions()] == [
        "append",
        "delete",
        "append",
    ]
    latest = _examples(tokens)
    assert (
        _check_round_trip(Dataset.open(runs.dataset), latest)
        == {str(i) for i in range(1, 19)} - _removed_ids()
    )


def test_with_threads_a_removed_post_takes_its_thread_out(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest(
        [
            post("1", "7", text="a thread starts here", conversation_id="1"),
            post("2", "9", text="a reply that will be deleted", conversation_id="1"),
            post("3", "7", text="another thread", conversation_id="3"),
            post("4", "9", text="its reply stays", conversation_id="3"),
        ]
    )
    _, tokens = _tokenize(runs.dataset, tmp_path / "tokens", threads=True, shards=1)
    assert {s["id"] for ex in _examples(tokens) for s in ex["sources"]} == {"1", "3"}
    runs.ingest([post_event("delete", "2")])
    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", threads=True, shards=1)
    assert report.status == "committed"
    kept = _examples(tokens, 2)
    assert {s["id"] for ex in kept for s in ex["sources"]} == {"3"}
    assert tokens.manifest(2).report["info"]["documents_removed"] == 1


def test_reading_an_older_posts_version_leaves_out_what_was_removed_since(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest(_posts(range(1, 17)))
    _compliance(runs)
    report, tokens = _tokenize(runs.dataset, tmp_path / "tokens", version=1)
    assert report.skipped_by_reason == {"removed_since_version": 3}
    ids = {s["id"] for ex in _examples(tokens) for s in ex["sources"]}
    assert ids == {str(i) for i in range(1, 17)} - _removed_ids()
    assert tokens.manifest().properties["applied"] == {runs.dataset: 2}


def _span(doc: str, offset: int, length: int) -> dict:
    return {"dataset": "p", "id": doc, "offset": offset, "length": length}


def test_repack_without_closes_up_spans_keeps_the_rest_and_counts():
    media = [{"kind": "video_frame", "shape": [1, 2, 2, 3], "patches": bytes(12)}]
    rows = [
        {"input_ids": [1, 2, 3, 4, 5], "sources": [_span("a", 0, 3), _span("b", 0, 2)]},
        {"input_ids": [6, 7, 8, 9], "sources": [_span("b", 2, 4)]},
        {"input_ids": [4, 11, 0, 0], "sources": [_span("c", 0, 2)], "media": media},
        {"input_ids": [12, 13, 14], "sources": [_span("d", 0, 1), _span("b", 6, 2)]},
    ]
    for i, r in enumerate(rows):
        r.update(example_id=f"e{i}", doc_lens=[s["length"] for s in r["sources"]])
        r.setdefault("media", [])
    table = pa.Table.from_pylist(rows, schema=TOKENS.schema)
    opts = RepackOptions(seed=1, seq_len=8, mode="concat")
    out = repack_without(table, {"p": {"b"}, "other": {"a"}}, opts)
    got = out.table.to_pylist()
    assert [r["input_ids"] for r in got] == [[1, 2, 3], [4, 11, 0, 0], [12]]
    assert [r["doc_lens"] for r in got] == [[3], [2], [1]]
    assert [[s["id"] for s in r["sources"]] for r in got] == [["a"], ["c"], ["d"]]
    assert got[1] == rows[2]  # untouched, media and padding included
    assert got[0]["example_id"] == example_id(1, 8, "concat", "p", "a", 0)
    assert out.counts == {
        "examples_in": 4,
        "examples_removed": 1,
        "examples_repacked": 2,
        "spans_removed": 3,
        "tokens_removed": 8,
    }
    assert out.documents == {("p", "b")}
    # the first span removed: the example takes the id of its new start
    first = repack_without(table, {"p": {"a"}}, opts).table.to_pylist()[0]
    assert first["input_ids"] == [4, 5]
    assert first["example_id"] == example_id(1, 8, "concat", "p", "b", 0)
    assert repack_without(table, {"p": {"zz"}}, opts).table is table


def test_a_scheduled_incremental_tokenize_after_a_compliance_ingest(tmp_path):
    runs, tokens = _ingest_and_tokenize(tmp_path)
    runs.ingest([post_event("delete", DELETED), user_event("user_delete", BLOCKED)])
    job = ["tokenize", runs.dataset, "--to", str(tmp_path / "tokens"), "--seq-len", "16"]
    done = _cli(["schedule", "--every", "1s", "--max-ticks", "1", "--", *job, "--shards", "8"])
    assert done.returncode == 0, done.stderr
    tick = next(line for line in done.stderr.splitlines() if " tick 1 " in line)
    # the removal version, then the carried posts' files (nothing new in them) are consumed
    assert " tick 1 committed version 3: " in tick, done.stderr
    tokens = Dataset.open(str(tmp_path / "tokens"))
    assert tokens.manifest(2).operation == "delete"
    assert tokens.manifest(3).report["skipped_by_reason"] == {"already_tokenized": 13}
    latest = _examples(tokens)
    assert (
        _check_round_trip(Dataset.open(runs.dataset), latest)
        == {str(i) for i in range(1, 17)} - _removed_ids()
    )


def test_examples_mixing_posts_and_clips_keep_every_clip_patch(tmp_path):
    runs = Runs(tmp_path)
    runs.ingest(_posts(range(1, 17)))
    clips = _commit(str(tmp_path / "clips"), "clips", [_clips(4)])
    both = (runs.dataset, clips.url)
    config = {"inputs": both, "dataset": str(tmp_path / "tokens"), "seq_len": 32, "shards": 2}
    run(TokenizeConfig(**config), in_process())
    tokens = Dataset.open(str(tmp_path / "tokens"))
    mixed = [
        ex
        for ex in _examples(tokens)
        if ex["media"] and {s["id"] for s in ex["sources"]} & _removed_ids()
    ]
    assert mixed  # guard: some example holds a removed post and clip patches
    _compliance(runs)
    run(TokenizeConfig(**config, incremental=True), in_process())
    tokens = Dataset.open(str(tmp_path / "tokens"))
    latest = _examples(tokens)
    pieces = _reassemble(latest)  # checks each example's media against its placeholders
    expected = _expected_docs(Dataset.open(runs.dataset), clips, load_tokenizer())
    assert set(pieces) == set(expected)
    for key, parts in pieces.items():
        parts.sort(key=lambda p: p[0])
        assert [t for _, ids, _ in parts for t in ids] == expected[key], key
