"""Progress while a run reads: workers' reports added up against the plan, shown as JSON lines,
and a stuck run warned about."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.ingest_fleet import IngestFleetConfig
from pipelines.ingest_fleet import run as run_fleet
from pipelines.ingest_posts import IngestPostsConfig
from pipelines.ingest_posts import run as run_posts
from pipelines.tokenize import TokenizeConfig
from pipelines.tokenize import run as run_tokenize
from runners.options import beam_options
from runners.progress import ProgressDisplay, ProgressPlan, Tally, showing
from transforms.progress import ProgressTarget, Reporter
from transforms.samples import (
    FleetSampleConfig,
    PostsSampleConfig,
    generate_fleet_sample,
    generate_posts_sample,
)

KEYS = {"stage", "done", "total", "unit", "rate", "eta_s", "elapsed_s"}


def json_updates(text: str) -> list[dict]:
    """Every line of ``--progress json`` output, parsed; each has the documented keys."""
    updates = [json.loads(line) for line in text.splitlines()]
    assert updates and all(set(u) >= KEYS for u in updates), updates
    return updates


def _feed_files(tally: Tally, directory: str, skip: set[str] = frozenset()) -> set[str]:
    names = set(os.listdir(directory))
    for name in sorted(names - skip):
        for line in Path(directory, name).read_text().splitlines():
            tally.feed(line, time.monotonic())
    return names


def test_reports_add_up_against_the_plan(tmp_path):
    plan = ProgressPlan(
        "ingest posts",
        "bytes",
        {"a.jsonl": {"bytes": 1000, "files": 1}, "b.jsonl": {"bytes": 500, "files": 1}},
    )
    # Two reporters, as two workers would be; every write goes out at once (every_s=0).
    target = ProgressTarget(str(tmp_path), every_s=0)
    one, two = Reporter(target), Reporter(target)
    tally = Tally(plan, started=time.monotonic())
    one.start("a.jsonl")
    one.add("a.jsonl", bytes=600, records=40)
    seen = _feed_files(tally, str(tmp_path))
    two.start("b.jsonl")
    two.add("b.jsonl", bytes=200, records=10)
    _feed_files(tally, str(tmp_path), skip=seen)
    snap = tally.snapshot(time.monotonic())
    assert (snap.done, snap.total, snap.files, snap.files_total) == (800, 1500, 0, 2)
    assert snap.counters == {"records": 50} and snap.stage == "ingest posts: read"
    assert tally.in_flight()[0] == "b.jsonl"  # the one started last

    # A bundle run again (a retry; Dask computing a step once per reader of its output)
    # reports the same source from zero again: counted once.
    again = Reporter(target)
    again.start("b.jsonl")
    again.add("b.jsonl", bytes=250, records=12)
    # Never past the plan; done: exactly the plan (a compressed file's reader may stop short
    # of the last bytes it counted).
    one.add("a.jsonl", bytes=900)
    one.done("a.jsonl")
    two.done("b.jsonl", bytes=100, records=5)
    for reporter in (one, two, again):
        reporter.close()
    tally = Tally(plan, started=time.monotonic())
    _feed_files(tally, str(tmp_path))
    snap = tally.snapshot(time.monotonic())
    assert (snap.done, snap.files) == (1500, 2) and snap.counters == {"records": 55}
    assert tally.all_read()  # b.jsonl was read whole once, whatever else runs it again
    assert snap.stage == "ingest posts: write"

    # Progress off: a reporter without a target, or whose directory is on another machine.
    for off in (Reporter(None), Reporter(ProgressTarget(str(tmp_path / "elsewhere")))):
        off.start("a.jsonl")
        off.done("a.jsonl", bytes=1)
        off.close()
    assert not (tmp_path / "elsewhere").exists() and len(os.listdir(tmp_path)) == 3


def test_a_torn_line_is_ignored_and_json_updates_are_complete():
    plan = ProgressPlan("tokenize", "rows", {"x/a.parquet": {"rows": 10}}, counters=("tokens",))
    tally = Tally(plan, started=time.monotonic() - 5)
    tally.feed('{"k": "x/a.parquet", "u": "0", "ev": "at", "n": {"rows": 4, "tok', 0)
    for group, rows in (("0", 4), ("1", 6)):  # two row groups, each in full
        line = {"k": "x/a.parquet", "u": group, "ev": "stop", "n": {"rows": rows, "tokens": 45}}
        tally.feed(json.dumps(line), time.monotonic())
    assert tally.all_read() and tally.reports == 2
    snap = tally.snapshot(time.monotonic(), finished=True, stage="finished")
    out = snap.to_dict()
    assert set(out) >= KEYS and out["done"] == out["total"] == 10 and out["tokens"] == 90
    assert out["stage"] == "tokenize: finished" and out["eta_s"] == 0.0
    assert out["rate"] > 0 and out["tokens_per_s"] > 0


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    generate_posts_sample(str(root / "posts"), PostsSampleConfig(posts=150, seed=4))
    fleet = FleetSampleConfig(
        layout="generic", vehicles=1, sessions=2, cameras=2, duration_s=4.0, seed=4
    )
    generate_fleet_sample(str(root / "fleet"), fleet)
    return root


def _watched(run, config, options) -> tuple[object, list[dict]]:
    out = io.StringIO()
    with showing(ProgressDisplay(mode="json", stream=out)):
        report = run(config, options)
    return report, json_updates(out.getvalue())


def test_every_pipeline_reaches_its_total_on_the_local_runner(samples, tmp_path):
    # Two worker processes: the reports come from other processes than this one.
    options = beam_options("local", 2, [])
    posts = tmp_path / "posts"
    report, updates = _watched(
        run_posts,
        IngestPostsConfig(
            sources=(str(samples / "posts"),), dataset=str(posts), max_reject_rate=0.1
        ),
        options,
    )
    last = updates[-1]
    sizes = sum(p.stat().st_size for p in (samples / "posts").iterdir() if p.name[0] != "_")
    assert last["stage"] == "ingest posts: finished" and last["unit"] == "bytes"
    assert last["done"] == last["total"] == sizes and last["files"] == last["files_total"] == 5
    # Records come only from the workers' reports: every record read was reported.
    assert last["records"] == report.records_in
    assert all(u["done"] <= u["total"] for u in updates)

    in_process = beam_options("local", None, [])  # small inputs run in this process
    report, updates = _watched(
        run_fleet,
        IngestFleetConfig(source=str(samples / "fleet"), dataset=str(tmp_path / "clips")),
        in_process,
    )
    last = updates[-1]
    videos = [p for p in (samples / "fleet").rglob("*") if p.is_file() and p.name[0] != "_"]
    assert last["done"] == last["total"] == sum(p.stat().st_size for p in videos)
    assert last["files"] == last["files_total"] == len(videos)
    assert last["records"] == report.records_in
    # 2 sessions x 2 cameras x 4 s of video, decoded window by window.
    assert last["camera_s"] == pytest.approx(16, abs=1)

    report, updates = _watched(
        run_tokenize,
        TokenizeConfig(inputs=(str(posts),), dataset=str(tmp_path / "tokens"), seq_len=64),
        in_process,
    )
    last = updates[-1]
    assert (last["unit"], last["stage"]) == ("rows", "tokenize: finished")
    assert last["done"] == last["total"] == report.records_in
    assert last["tokens"] == report.stats["tokens"] - report.stats.get("padding_tokens", 0)


def test_a_source_that_blocks_is_named_by_the_stall_warning(tmp_path):
    fifo = tmp_path / "stuck.jsonl"
    os.mkfifo(fifo)
    argv = [
        sys.executable,
        "-m",
        "runners.cli",
        "ingest",
        "posts",
        str(fifo),
        "--to",
        str(tmp_path / "posts"),
        "--progress",
        "json",
        "--stall-warning",
        "1s",
        "--max-reject-rate",
        "1",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Opening a FIFO blocks its reader until a writer comes: the run is stuck on it. The
        # warning repeats every second; on a loaded machine the first ones can come before a
        # worker has started (they say so), so the test waits for one naming a source.
        warnings = []
        for line in proc.stderr:
            update = json.loads(line)
            if "warning" in update:
                warnings.append(update)
                if update["source"] is not None or len(warnings) == 30:
                    break
        warning = warnings[-1]
        assert warning["stage"] == "ingest posts: read" and warning["source"] == str(fifo)
        assert warning["warning"].startswith("no progress for ")
        assert f"last source in flight: {fifo}" in warning["warning"]
    finally:
        with open(fifo, "wb"):
            pass  # a writer comes and goes: the reader gets end-of-file
        rest = proc.stderr.read()
        proc.wait(60)
    assert proc.returncode == 0, rest
    assert json_updates(rest)[-1]["stage"] == "ingest posts: finished"
