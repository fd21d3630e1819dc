"""The command line: help, samples, history, gc, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from tablegen import posts_table, write_data_file

from catalog import CommitRequest, Dataset, new_run_id
from runners.cli import main
from runners.errors import UserError
from runners.options import beam_options, parse_storage_options

BIN = Path(sys.executable).parent / "shardsmith"


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)


def test_help_explains_every_command():
    out = _cli("--help")
    assert out.returncode == 0
    commands = ("demo", "sample", "ingest", "tokenize", "query", "inspect", "history", "gc")
    for word in (*commands, "examples:"):
        assert word in out.stdout
    subcommands = [
        ["sample", "fleet"],
        ["sample", "posts"],
        ["ingest", "posts"],
        ["ingest", "fleet"],
    ]
    for cmd in [*subcommands, *([c] for c in commands[1:] if c not in ("sample", "ingest"))]:
        sub = _cli(*cmd, "--help")
        assert sub.returncode == 0 and "usage: shardsmith" in sub.stdout
        if cmd in (["ingest", "posts"], ["ingest", "fleet"], ["tokenize"]):
            text = " ".join(sub.stdout.split())
            assert "--progress {auto,bar,json,plain,off}" in text and "ETA" in text
            assert "--stall-warning DURATION" in text and "last source in flight" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "/no/such/dataset"], "not a shardsmith dataset (no dataset.json)"),
        (["gc", "/tmp", "--min-age", "soon"], "--min-age 'soon': expected a duration"),
        (["sample", "fleet", "/tmp/x", "--size", "big"], "expected WIDTHxHEIGHT"),
        (["sample", "fleet", "/tmp/x", "--cameras", "9"], "cameras=9: expected 1 to 4"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["history", "/tmp", "--storage-options", "{oops"], "--storage-options: not valid JSON"),
        (
            ["ingest", "posts", "/tmp", "--to", "/tmp/x", "--stall-warning", "soon"],
            "argument --stall-warning: 'soon': expected a duration such as 90s",
        ),
        (
            ["tokenize", "/tmp/a", "--to", "/tmp/x", "--progress", "loud"],
            "argument --progress: invalid choice: 'loud'",
        ),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(args, message):
    out = _cli(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_sample_commands_write_what_they_print(tmp_path, capsys):
    assert main(["sample", "posts", str(tmp_path / "p"), "--posts", "50", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    truth = json.loads((tmp_path / "p" / "_SAMPLE.json").read_text())
    assert f"{len(truth['post_ids'])} posts" in out and "stream-0001.jsonl.gz" in out
    args = [
        "sample",
        "fleet",
        str(tmp_path / "f"),
        "--layout",
        "generic",
        "--vehicles",
        "1",
        "--sessions",
        "1",
        "--duration",
        "2",
        "--size",
        "96x64",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "veh-0001" in out and (tmp_path / "f" / "generic" / "veh-0001").is_dir()


def test_demo_generates_both_samples(tmp_path):
    out = _cli("demo", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    assert "fleet sample" in out.stdout and "post sample" in out.stdout
    assert "committed (append, version 1)" in out.stdout
    written, expected = re.search(
        r"(\d+) posts written; the sample's truth expects (\d+)", out.stdout
    ).groups()
    assert written == expected
    for kind in ("fleet", "posts"):
        assert (tmp_path / "demo" / "samples" / kind / "_SAMPLE.json").exists()
    assert re.search(r"TokenReader\(.*input_ids int32\[8, 2048\]", out.stdout)
    tokens = Dataset.open(str(tmp_path / "demo" / "datasets" / "tokens"))
    assert tokens.manifest().report["records_written"] == int(written) + 40  # posts + clips
    sheet = Image.open(tmp_path / "demo" / "contact-sheet.png")
    assert sheet.width > 4 * 224 and sheet.height > 2 * 224  # frames are 224x224
    assert Image.open(tmp_path / "demo" / "document-lengths.png").size == (800, 400)


def test_history_and_gc(tmp_path, capsys):
    url = str(tmp_path / "ds")
    ds = Dataset.create(url, "posts")
    for n in (3, 4):
        run_id = new_run_id()
        entry = write_data_file(ds, f"data/{run_id}-00000.parquet", posts_table(n))
        ds.commit(CommitRequest(run_id=run_id, add=[entry], report={"records_written": n}))
    orphan = tmp_path / "ds" / "data" / "crashed-00000.parquet"
    orphan.write_bytes(b"x" * 10)
    assert main(["history", url]) == 0
    out = capsys.readouterr().out
    assert "posts dataset" in out and " 7 " in out and "append" in out
    assert main(["history", url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["version"], r["rows"], r["files"]) for r in rows] == [(1, 3, 1), (2, 7, 2)]
    assert main(["gc", url]) == 0
    assert "kept 1 orphan files younger than 1h" in capsys.readouterr().out and orphan.exists()
    assert main(["gc", url, "--min-age", "0", "--dry-run"]) == 0
    assert "would remove data/crashed-00000.parquet" in capsys.readouterr().out
    assert orphan.exists()
    assert main(["gc", url, "--min-age", "0"]) == 0
    assert "removed 1 orphan files (10 B)" in capsys.readouterr().out and not orphan.exists()
    assert len(Dataset.open(url).files()) == 2


def test_runner_flags_pass_through_to_beam_and_typos_are_caught():
    options = beam_options("local", None, ["--direct_running_mode=in_memory", "--job_name=x"])
    all_options = options.get_all_options()
    assert all_options["direct_running_mode"] == "in_memory"  # a pass-through flag wins
    assert all_options["direct_num_workers"] == os.cpu_count()
    assert all_options["job_name"] == "x"
    with pytest.raises(UserError, match="unknown option --direct_num_worker"):
        beam_options("local", None, ["--direct_num_worker=3"])
    with pytest.raises(UserError, match="--workers 0"):
        beam_options("local", 0, [])


def test_storage_options_parse_without_echoing_secrets(tmp_path):
    assert parse_storage_options('{"key": "k"}') == {"key": "k"}
    path = tmp_path / "opts.json"
    path.write_text('{"anon": true}')
    assert parse_storage_options(f"@{path}") == {"anon": True}
    with pytest.raises(UserError) as err:
        parse_storage_options('{"secret": "hunter2"')
    assert "hunter2" not in str(err.value)


def test_run_report_prints_where_every_record_went(capsys):
    from runners.console import print_report
    from transforms import RunReport

    report = RunReport(
        run_id="r1",
        dataset="/d",
        kind="posts",
        status="committed",
        version=4,
        records_in=110,
        records_written=100,
        records_rejected=3,
        deduplicated_by_reason={"post_id": 5},
        records_deleted=1,
        rejects_by_reason={"json_invalid": 3},
        skipped_by_reason={"tweet_counts": 1},
        files_written=2,
        bytes_written=3 * 1024 * 1024,
    )
    report.check_nothing_lost()
    print_report(report)
    out = capsys.readouterr().out
    for text in (
        "committed (append, version 4)",
        "records in",
        "110",
        "json_invalid",
        "tweet_counts",
        "deduplicated",
        "deleted (compliance)",
        "2 (3.0 MiB)",
    ):
        assert text in out, text
