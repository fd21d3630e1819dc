"""`shardsmith ingest posts` end to end, on the local multi-process runner."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from tablegen import read_version

from catalog import Dataset
from pipelines.ingest_posts import IngestPostsConfig, run
from runners.execute import RunFailed
from runners.options import beam_options
from transforms.samples import PostsSampleConfig, generate_posts_sample

UTC = dt.timezone.utc
BIN = Path(sys.executable).parent / "shardsmith"


def local():
    """The default runner: worker processes."""
    return beam_options("local", 2, [])


def in_process():
    return beam_options("local", 1, ["--direct_running_mode=in_memory"])


def _ingest(sources, dataset, options=None, **kw):
    config = IngestPostsConfig(sources=tuple(map(str, sources)), dataset=str(dataset), **kw)
    return run(config, options or local())


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("posts")
    truth = generate_posts_sample(str(root), PostsSampleConfig(posts=600, seed=4))
    return root, truth


@pytest.fixture(scope="module")
def ingested(sample, tmp_path_factory):
    root, _ = sample
    url = tmp_path_factory.mktemp("ds") / "posts"
    report = _ingest([root], url)
    return url, report


def test_the_sample_ingests_to_exactly_its_truth(sample, ingested):
    _, truth = sample
    url, report = ingested
    table = read_version(Dataset.open(str(url)))
    ids = table.column("post_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert sorted(ids) == truth["expected_post_ids"]
    assert report.status == "committed" and report.records_written == len(ids)
    # every form and every compression contributed
    assert {Path(u).name for u in table.column("source_uri").to_pylist()} == {
        "pages-0001.jsonl",
        "stream-0001.jsonl.gz",
        "twarc-0001.jsonl.zst",
        "flat-0001.jsonl",
    }
    langs = table.group_by("lang").aggregate([("post_id", "count")]).to_pydict()
    assert dict(zip(langs["lang"], langs["post_id_count"], strict=True)) == truth["langs"]


def test_nothing_is_lost_and_every_reject_says_where(sample, ingested):
    _, truth = sample
    url, report = ingested
    assert report.records_in == (
        report.records_written
        + report.records_rejected
        + report.records_deduplicated
        + report.records_deleted
        + report.records_skipped
    )
    expected_reasons = {
        "truncated_json": "json_invalid",
        "invalid_utf8": "invalid_utf8",
        "not_an_object": "not_an_object",
        "missing_field": "missing_field",
        "wrong_type": "wrong_type",
        "bad_timestamp": "bad_timestamp",
    }
    want = sorted(
        (m["file"], f"line {m['line']}", expected_reasons[m["kind"]]) for m in truth["malformed"]
    )
    ds = Dataset.open(str(url))
    manifest = ds.manifest()
    rejects = pa.concat_tables(pq.read_table(ds.path(f.path)) for f in manifest.rejects)
    got = sorted(
        zip(
            (Path(u).name for u in rejects.column("source_uri").to_pylist()),
            rejects.column("locator").to_pylist(),
            rejects.column("reason").to_pylist(),
            strict=True,
        )
    )
    assert got == want
    assert all(rejects.column("payload").to_pylist())
    skipped = dict(truth["skipped"], compliance_delete=len(truth["deleted_ids"]))
    assert report.skipped_by_reason == skipped
    assert manifest.report["records_in"] == report.records_in
    assert {s.uri.rsplit("/", 1)[1] for s in manifest.sources} == set(truth["files"])


def test_a_big_run_writes_each_day_with_every_worker_and_the_same_rows(
    sample, ingested, tmp_path, monkeypatch
):
    import pipelines.ingest_posts as ingest_posts

    root, _ = sample
    url, _ = ingested
    # As if the inputs were gigabytes: one writer per worker.
    monkeypatch.setattr(ingest_posts, "_WRITER_INPUT_BYTES", 1)
    report = _ingest([root], tmp_path / "posts")
    ds = Dataset.open(str(tmp_path / "posts"))
    assert report.records_written == ds.manifest().report["records_written"]

    def rows(table):
        return table.sort_by("post_id").to_pylist()

    assert rows(read_version(ds)) == rows(read_version(Dataset.open(str(url))))
    # A staged chunk goes to the writer its file's name hashes to: with 40 sources of one day,
    # both writers of that day get some (all 40 to one: a chance of 2**-39).
    day = tmp_path / "day"
    day.mkdir()
    for f in range(40):
        lines = [
            {"id": f"{f}{i:03d}", "text": f"post {f} {i}", "created_at": "2026-11-21T10:00:00Z"}
            for i in range(5)
        ]
        (day / f"{f:02d}.jsonl").write_text(
            "".join(json.dumps({**x, "author_id": "1"}) + "\n" for x in lines)
        )
    _ingest([day], tmp_path / "day-posts")
    files = Dataset.open(str(tmp_path / "day-posts")).files()
    assert sorted(f.path.rsplit("/", 1)[0] for f in files) == ["data/dt=2026-11-21"] * 2
    assert sum(f.rows for f in files) == 200


def test_writers_per_day_follow_the_input_and_the_local_workers():
    from pipelines.ingest_posts import Plan, writers_per_day
    from schemas import SourceEntry

    def plan(gib):
        return Plan("r", [SourceEntry("f", gib << 30, None)], [], 0, [], 8)

    assert writers_per_day(local(), plan(1)) == 1  # small: one file a day
    assert writers_per_day(local(), plan(4)) == 2  # one per worker
    assert writers_per_day(local(), plan(400)) == 2
    assert writers_per_day(in_process(), plan(400)) == 1
    portable = beam_options("portable", None, [], job_endpoint="127.0.0.1:8099")
    assert writers_per_day(portable, plan(400)) == 1  # workers not known here


HAND = Path(__file__).parent / "data" / "hand_checked.jsonl"


def test_hand_checked_posts_have_exactly_the_expected_columns(tmp_path):
    report = _ingest([HAND], tmp_path / "posts")
    assert (report.records_in, report.records_written) == (9, 7)
    assert report.deduplicated_by_reason == {"edit_superseded": 1, "post_id": 1}
    rows = {
        r["post_id"]: r for r in read_version(Dataset.open(str(tmp_path / "posts"))).to_pylist()
    }
    common = {
        "possibly_sensitive": None,
        "withheld_in_countries": None,  # no post of the file is withheld or geotagged
        "geo": None,
        "lang_source": "source",  # every post of the file has X's lang
        "source_uri": str(HAND),
        "text_hash": rows["101"]["text_hash"],
    }
    assert rows["101"] == common | {
        "post_id": "101",
        "created_at": dt.datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=UTC),
        "author_id": "1",
        "author_username": "road_en",
        "text": "Q&A tonight: <self-driving> > human? #AI",
        "lang": "en",
        "conversation_id": "101",
        "reply_to_post_id": None,
        "quoted_post_id": None,
        "reposted_post_id": None,
        "hashtags": ["AI"],
        "mentions": [],
        "cashtags": [],
        "urls": [],
        "media": [],
        "like_count": 5,
        "repost_count": 1,
        "reply_count": 1,
        "quote_count": 1,
        "edit_history_ids": ["101"],
        "source_line": 1,
        "possibly_sensitive": False,
    }
    assert rows["102"] | {"text_hash": 0} == common | {"text_hash": 0} | {
        "post_id": "102",
        "created_at": dt.datetime(2026, 11, 20, 8, 5, tzinfo=UTC),
        "author_id": "2",
        "author_username": "city_ja",
        "text": "@road_en 東京の朝は渋滞 🚗 #東京",
        "lang": "ja",
        "conversation_id": "101",
        "reply_to_post_id": "101",
        "quoted_post_id": None,
        "reposted_post_id": None,
        "hashtags": ["東京"],
        "mentions": ["road_en"],
        "cashtags": [],
        "urls": [],
        "media": [],
        "like_count": None,
        "repost_count": None,
        "reply_count": None,
        "quote_count": None,
        "edit_history_ids": ["102"],
        "source_line": 1,
    }
    assert rows["103"] | {"text_hash": 0} == common | {"text_hash": 0} | {
        "post_id": "103",
        "created_at": dt.datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        "author_id": "2",
        "author_username": "city_ja",
        "text": "Look at this $TSLA https://t.co/q1 https://t.co/m1",
        "lang": "en",
        "conversation_id": "103",
        "reply_to_post_id": None,
        "quoted_post_id": "101",
        "reposted_post_id": None,
        "hashtags": [],
        "mentions": [],
        "cashtags": ["TSLA"],
        "urls": ["https://twitter.com/road_en/status/101"],
        "media": [
            {
                "media_key": "7_1",
                "type": "video",
                "url": "https://video.example/hi.mp4",
                "preview_url": "https://pbs.example/7_1.jpg",
                "duration_ms": 12000,
                "width": 1280,
                "height": 720,
                "alt_text": None,
            }
        ],
        "like_count": 0,
        "repost_count": 0,
        "reply_count": 0,
        "quote_count": 0,
        "edit_history_ids": ["103"],
        "source_line": 2,
    }
    assert rows["104"]["reposted_post_id"] == "101" and rows["104"]["text"].startswith(
        "RT @road_en: Q&A"
    )
    assert rows["104"]["text_hash"] == rows["101"]["text_hash"]  # what --dedup-text compares
    assert "105" not in rows and rows["106"]["text"] == "Fixed typo (edited)"
    assert rows["106"]["edit_history_ids"] == ["105", "106"]
    assert rows["107"]["text"] == "café ok" and rows["107"]["author_username"] == "plain_user"
    assert rows["107"]["reply_to_post_id"] == "106" and rows["107"]["like_count"] == 3
    assert rows["108"]["author_username"] == "inline_author"  # twarc2: author inlined
    assert rows["108"]["media"][0]["url"] == "https://pbs.example/p.jpg"


def test_compliance_deletes_rewrite_committed_versions(sample, tmp_path):
    root, truth = sample
    posts = [p for p in root.iterdir() if not p.name.startswith(("_", "compliance"))]
    url = tmp_path / "posts"
    first = _ingest(posts, url)
    deleted = set(truth["deleted_ids"])
    v1 = set(read_version(Dataset.open(str(url))).column("post_id").to_pylist())
    assert deleted & v1 and first.records_deleted == 0
    second = _ingest([root / "compliance-0001.jsonl"], url, max_reject_rate=0.5)
    ds = Dataset.open(str(url))
    assert second.operation == "delete" and ds.manifest().operation == "delete"
    v2 = set(read_version(ds).column("post_id").to_pylist())
    assert not v2 & deleted and v1 - v2 >= deleted & v1
    assert v2 == set(truth["expected_post_ids"])
    assert second.info["committed_rows_deleted"] == len(v1 - v2)
    assert second.files_removed > 0 and second.records_written == 0
    assert set(read_version(ds, 1).column("post_id").to_pylist()) == v1  # time travel still works


def test_incremental_runs_read_only_new_sources(sample, tmp_path):
    root, _ = sample
    src = tmp_path / "src"
    shutil.copytree(root, src)
    url = tmp_path / "posts"
    first = _ingest([src], url, options=in_process(), incremental=True)
    again = _ingest([src], url, options=in_process(), incremental=True)
    assert first.status == "committed" and again.status == "nothing-new"
    assert "all 5 sources were consumed" in again.message
    assert Dataset.open(str(url)).versions() == [1]
    extra = {
        "id": "9001",
        "text": "brand new",
        "created_at": "2026-11-21T00:00:00Z",
        "author_id": "1",
    }
    (src / "late.jsonl").write_text(json.dumps(extra) + "\n")
    third = _ingest([src], url, options=in_process(), incremental=True)
    assert (third.records_in, third.records_written) == (1, 1)
    repeat = _ingest([src], url, options=in_process())  # not incremental: all read, none new
    assert repeat.records_written == 0 and repeat.deduplicated_by_reason["post_id"] > 0


def test_text_dedup_pii_scrub_and_filters(sample, tmp_path):
    root, truth = sample
    report = _ingest([root], tmp_path / "a", options=in_process(), dedup_text=True, scrub_pii=True)
    table = read_version(Dataset.open(str(tmp_path / "a")))
    texts = dict(
        zip(table.column("post_id").to_pylist(), table.column("text").to_pylist(), strict=True)
    )
    spam = [i for i in truth["spam_ids"] if i in texts]
    assert len(spam) == 1 and report.deduplicated_by_reason["text"] > len(truth["spam_ids"]) - 2
    hashes = table.column("text_hash").to_pylist()
    assert len([h for h in hashes if h]) == len({h for h in hashes if h})
    for pid in truth["pii_ids"]:
        if pid in texts:
            assert "@example.com" not in texts[pid] and "555 0142" not in texts[pid]
    assert report.info["pii_scrubbed_posts"] >= 1
    ja = _ingest([root], tmp_path / "b", options=in_process(), langs=("ja",), drop_reposts=True)
    table = read_version(Dataset.open(str(tmp_path / "b")))
    assert set(table.column("lang").to_pylist()) == {"ja"}
    assert table.column("reposted_post_id").null_count == table.num_rows
    assert ja.skipped_by_reason["filter_lang"] > 0


def test_too_many_rejects_exit_1_and_commit_nothing(tmp_path):
    src = tmp_path / "bad.jsonl.zst"
    lines = [b'{"id": "1", "text": "ok", "created_at": "2026-11-20T00:00:00Z", "author_id": "1"}']
    lines += [b'{"broken": ' for _ in range(3)]
    src.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(RunFailed) as failed:
        _ingest([src], tmp_path / "posts", options=in_process())
    assert failed.value.report.rejects_by_reason == {"json_invalid": 3}
    assert Dataset.open(str(tmp_path / "posts")).versions() == []
    out = subprocess.run(
        [
            str(BIN),
            "ingest",
            "posts",
            str(src),
            "--to",
            str(tmp_path / "p2"),
            "--direct_running_mode=in_memory",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "3 of 4 records rejected" in out.stdout


def test_long_lines_and_truncated_gzip_are_rejects_not_crashes(tmp_path):
    post = b'{"id": "%d", "text": "ok", "created_at": "2026-11-20T00:00:00Z", "author_id": "1"}'
    body = b"\n".join([post % 1, b'{"text": "' + b"x" * 5000 + b'"}', post % 2]) + b"\n"
    (tmp_path / "long.jsonl").write_bytes(body)
    whole = gzip.compress(b"\n".join(post % i for i in range(100, 400)) + b"\n")
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    report = _ingest(
        [tmp_path / "long.jsonl", tmp_path / "cut.jsonl.gz"],
        tmp_path / "posts",
        options=in_process(),
        max_line_bytes=1000,
        max_reject_rate=1.0,
    )
    assert report.rejects_by_reason == {"line_too_long": 1, "read_error": 1}
    assert report.records_written > 2  # the lines before the break are kept


def test_cli_errors_are_one_line(tmp_path):
    out = subprocess.run(
        [str(BIN), "ingest", "posts", str(tmp_path / "nope"), "--to", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stderr.strip().endswith("no such file or directory")
    assert out.stderr.count("\n") == 1
    out = subprocess.run(
        [
            str(BIN),
            "ingest",
            "posts",
            str(tmp_path),
            "--to",
            str(tmp_path / "d"),
            "--max-line-bytes",
            "lots",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--max-line-bytes 'lots': expected a size" in out.stderr


def test_sources_and_dataset_on_s3(moto_endpoint):
    """Sources listed, read and ingested from moto's S3 server; credentials stay out of the manifest."""
    import fsspec
    from conftest import make_bucket, s3_options

    options = s3_options(moto_endpoint)
    bucket = make_bucket(moto_endpoint)
    fs = fsspec.filesystem("s3", **options)
    fs.pipe_file(f"{bucket}/in/hand.jsonl", HAND.read_bytes())
    fs.pipe_file(f"{bucket}/in/_ignored.jsonl", b"not even json\n")
    url = f"s3://{bucket}/posts"
    report = _ingest([f"s3://{bucket}/in/"], url, options=in_process(), storage_options=options)
    assert report.status == "committed" and report.records_written == 7
    ds = Dataset.open(url, storage_options=options)
    raw = ds.fs.cat_file(ds.path("manifests/v00000001.json")).decode()
    assert "testing" not in raw and moto_endpoint not in raw
    assert [s.uri for s in ds.manifest().sources] == [f"s3://{bucket}/in/hand.jsonl"]
