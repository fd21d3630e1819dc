"""`shardsmith schedule`: ticks, the lock between writers, signals, and exactly-once ingestion
when a tick is killed (SIGKILL) before it writes, between writing and committing, and right
after committing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from tablegen import read_version

from catalog import Dataset, DatasetLock
from runners.schedule import TickLine, next_slot, parse_job, passed_through, tick_argv
from transforms.samples import PostsSampleConfig, generate_posts_sample

BIN = Path(sys.executable).parent / "shardsmith"
# One process, no Beam workers: these tests are about ticks and commits, not the runner.
FAST = ("--runner", "local", "--workers", "1", "--direct_running_mode=in_memory")
FILES = (
    "pages-0001.jsonl",
    "stream-0001.jsonl.gz",
    "twarc-0001.jsonl.zst",
    "flat-0001.jsonl",
    "compliance-0001.jsonl",
)


def _schedule(source, dataset, *args: str, fault: str | None = None) -> subprocess.Popen:
    """Start `shardsmith schedule ARGS -- ingest posts SOURCE --to DATASET` (fast runner)."""
    env = dict(os.environ)
    env.pop("SHARDSMITH_FAULT", None)
    if fault:
        env["SHARDSMITH_FAULT"] = fault
    argv = [str(BIN), "schedule", *args, "--", "ingest", "posts", str(source), "--to", str(dataset)]
    return subprocess.Popen(
        [*argv, *FAST],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # whatever a tick does to its own group never reaches pytest
    )


def _finish(proc: subprocess.Popen) -> tuple[int, list[str]]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.splitlines()


def _tick_lines(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        stamp, _, rest = line.partition(" ")
        if rest.startswith("tick "):
            datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")  # every tick line starts with its time
            out.append(rest)
    return out


def _wait_for_holder(dataset, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(dataset, "_locks").exists():
            holder = DatasetLock(str(dataset)).holder()
            if holder is not None:
                return holder
        time.sleep(0.02)
    raise TimeoutError(f"no run took the lock of {dataset}")


def _child_of(pid: int, timeout=30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        if children:
            return int(children[0])
        time.sleep(0.002)
    raise TimeoutError(f"process {pid} started no tick")


def _post_ids(dataset, version=None) -> list[str]:
    return sorted(read_version(Dataset.open(str(dataset)), version).column("post_id").to_pylist())


def _consumed(dataset, version) -> set[str]:
    """Names of the sources version ``version`` consumed (and no earlier version had)."""
    ds = Dataset.open(str(dataset))
    before = {s.uri for s in ds.manifest(version - 1).sources} if version > 1 else set()
    return {Path(s.uri).name for s in ds.manifest(version).sources if s.uri not in before}


def _orphans(dataset) -> set[str]:
    ds = Dataset.open(str(dataset))
    live = {f.path for v in ds.versions() for f in ds.manifest(v).files}
    root = Path(dataset)
    # A killed run leaves its data files, and its staged rows (catalog.staging), to gc.
    return {str(p.relative_to(root)) for p in root.glob("data/**/*.parquet")} - live | _staged(
        dataset
    )


def _staged(dataset) -> set[str]:
    root = Path(dataset)
    return {str(p.relative_to(root)) for p in root.glob("_staging/**/*.arrow")}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("posts")
    truth = generate_posts_sample(str(root), PostsSampleConfig(posts=100, malformed=0, seed=3))
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("_")) == sorted(FILES)
    return root, truth


@pytest.fixture(scope="module")
def uninterrupted(sample, tmp_path_factory):
    """The whole sample ingested by one run, in this process: what the schedule must match."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.ingest_posts import IngestPostsConfig, run

    source, _ = sample
    url = tmp_path_factory.mktemp("uninterrupted") / "posts"
    options = PipelineOptions(
        ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    )
    report = run(IngestPostsConfig(sources=(str(source),), dataset=str(url)), options)
    assert report.status == "committed"
    return url


def test_killed_ticks_leave_the_last_version_and_the_next_tick_ingests_exactly_once(
    sample, uninterrupted, tmp_path
):
    source, truth = sample
    watched, url = tmp_path / "in", tmp_path / "posts"
    watched.mkdir()

    def arrive(*names):
        for name in names:
            shutil.copy2(source / name, watched / name)

    # 1. Tick 1 is killed right after it started, before it wrote anything; tick 2 does its
    #    work. SIGTERM during tick 2 lets it finish, then the schedule exits 0. A manual ingest
    #    meanwhile gets the lock message.
    arrive("pages-0001.jsonl")
    proc = _schedule(watched, url, "--every", "1s", "--max-ticks", "5", "--lock-ttl", "2s")
    child = _child_of(proc.pid)
    try:
        os.killpg(child, signal.SIGKILL)
    except ProcessLookupError:  # not yet in its own group
        os.kill(child, signal.SIGKILL)
    holder = _wait_for_holder(url)
    # A 2 s lease, so the tick's lock lives on renewals (every 0.67 s) while it runs.
    deadline = time.monotonic() + 30
    while (now := DatasetLock(str(url)).holder()) and now.expires_at <= holder.expires_at:
        assert time.monotonic() < deadline, "the lease was never renewed"
        time.sleep(0.05)
    assert now is not None and now.generation == holder.generation, "renewed, still held"
    proc.send_signal(signal.SIGTERM)
    manual = subprocess.run(
        [str(BIN), "ingest", "posts", str(watched), "--to", str(url), "--incremental", *FAST],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rc, lines = _finish(proc)
    ticks = _tick_lines(lines)
    assert rc == 0, lines
    assert ticks[0].startswith("tick 1 killed version 0: SIGKILL, nothing committed"), lines
    assert ticks[1].startswith("tick 2 committed version 1: in "), lines
    assert len(ticks) == 2 and "SIGTERM: finishing tick 2, then exiting" in "".join(lines)
    assert lines[-1].endswith("schedule stopped by SIGTERM after 2 ticks")
    assert _consumed(url, 1) == {"pages-0001.jsonl"}
    assert Dataset.open(str(url)).manifest(1).run_id == holder.run_id
    assert manual.returncode == 1 and manual.stderr.count("\n") == 1, manual.stderr
    assert manual.stderr.startswith(
        f"shardsmith: locked: {url} is locked by ingest posts (run {holder.run_id}, "
        f"pid {holder.pid} on {holder.host}) since 20"
    )
    assert manual.stderr.rstrip().endswith("; try again later, or --lock-wait 10m")
    v1 = _post_ids(url)

    # 2. Killed between writing its files and committing them: version 1 stays what it was.
    arrive("stream-0001.jsonl.gz")
    proc = _schedule(watched, url, "--every", "1s", "--max-ticks", "1", fault="before-commit")
    rc, lines = _finish(proc)
    [tick] = _tick_lines(lines)
    assert tick.startswith("tick 1 killed version 1: SIGKILL, nothing committed"), lines
    assert rc == 1
    assert Dataset.open(str(url)).latest_version() == 1 and _post_ids(url) == v1
    orphans = _orphans(url)
    assert orphans  # written, never listed
    dead = json.loads(next(Path(url, "_locks").glob("lock-*.json")).read_text())
    assert dead["released"] is False and DatasetLock(str(url)).holder() is None  # pid is gone

    # 3. More files arrive. The next tick takes the dead holder's lock over at once, ingests
    #    the killed tick's file and the new ones -- only those -- and is killed right after
    #    committing: the version is there, and the tick says so. The tick after it finds
    #    nothing new, commits nothing, and says so.
    arrive("twarc-0001.jsonl.zst", "flat-0001.jsonl", "compliance-0001.jsonl")
    proc = _schedule(watched, url, "--every", "1s", "--max-ticks", "2", fault="after-commit")
    rc, lines = _finish(proc)
    ticks = _tick_lines(lines)
    assert ticks[0].startswith("tick 1 committed version 2: in "), lines
    assert ticks[0].endswith("; then killed by SIGKILL (" + ticks[0].rsplit("(", 1)[1])
    assert ticks[1].startswith("tick 2 nothing-new version 2: nothing new, nothing committed")
    assert rc == 0 and Dataset.open(str(url)).latest_version() == 2
    assert _consumed(url, 2) == set(FILES) - {"pages-0001.jsonl"}
    lock = json.loads(next(Path(url, "_locks").glob("lock-*.json")).read_text())
    assert lock["generation"] == dead["generation"] + 2 and lock["released"] is True

    # Exactly once: the same posts as one uninterrupted ingest of every file, none twice.
    final = _post_ids(url)
    assert final == _post_ids(uninterrupted) == truth["expected_post_ids"]
    assert len(final) == len(set(final))
    ds = Dataset.open(str(url))
    assert ds.manifest().rows == Dataset.open(str(uninterrupted)).manifest().rows == len(final)

    # The killed ticks' files are orphans for gc (the tick killed right after its commit left
    # its staged rows); every version stays readable after it.
    orphans |= _staged(url)
    gc = subprocess.run(
        [str(BIN), "gc", str(url), "--min-age", "0"], capture_output=True, text=True, timeout=60
    )
    assert gc.returncode == 0, gc.stderr
    removed = {line.split(" ", 1)[1] for line in gc.stdout.splitlines()[:-1]}
    assert removed == orphans and not _orphans(url)
    for version in (1, 2):
        assert len(_post_ids(url, version)) == ds.manifest(version).rows


def test_a_second_signal_stops_the_tick_and_its_lock_is_released(sample, tmp_path):
    source, _ = sample
    url = tmp_path / "posts"
    proc = _schedule(source, url, "--every", "1s", "--max-ticks", "3")
    holder = _wait_for_holder(url)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    rc, lines = _finish(proc)
    assert rc == 130, lines
    assert "SIGINT again: stopping tick 1" in lines[1]
    [tick] = _tick_lines(lines)
    assert tick.startswith("tick 1 killed version 0: SIGTERM, nothing committed"), lines
    # The tick released its own lock on the way out (its SIGTERM handler), so the next run
    # goes ahead at once, whatever the host.
    record = json.loads(Path(url, "_locks", f"lock-{holder.generation:08d}.json").read_text())
    assert record["released"] is True and record["run_id"] == holder.run_id


def test_while_the_lock_is_held_ticks_wait_and_every_writer_gets_the_message(sample, tmp_path):
    source, _ = sample
    url = tmp_path / "ds"
    writers = [
        ["ingest", "posts", str(source), "--to", str(url), "--lock-wait", "1s"],
        ["ingest", "fleet", str(tmp_path), "--to", str(url)],
        ["tokenize", str(tmp_path), "--to", str(url)],
    ]
    with DatasetLock(str(url), run_id="manual-1", command="ingest posts"):
        scheduler = _schedule(source, url, "--every", "1s", "--max-ticks", "2")
        manual = [
            subprocess.Popen([str(BIN), *w], stderr=subprocess.PIPE, text=True) for w in writers
        ]
        said = [(p.communicate(timeout=60)[1], p.returncode) for p in manual]
        rc, lines = _finish(scheduler)
    ticks = _tick_lines(lines)
    assert len(ticks) == 2 and rc == 0
    held_by = f"{url} is locked by ingest posts (run manual-1, pid {os.getpid()} on "
    for n, tick in enumerate(ticks, 1):
        assert tick.startswith(f"tick {n} lock-held version 0: {held_by}"), lines
        assert "; waiting for the next tick (" in tick
    for (err, status), waited in zip(said, ("(waited 1s); ", "", ""), strict=True):
        assert status == 1 and err.count("\n") == 1, err
        assert err.startswith(f"shardsmith: locked: {held_by}") and waited in err
    assert not Path(url, "manifests").exists() and not Path(url, "dataset.json").exists()


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            ["query", "/x", "SELECT 1"],
            "cannot schedule 'query /x': expected -- ingest posts | ingest fleet | tokenize",
        ),
        (["ingest", "posts", "/x"], "schedule: ingest posts needs --to DATASET"),
        (["tokenize", "/x", "--to", "/y", "--run-id", "r"], "--run-id is set by the schedule"),
        (
            ["ingest", "fleet", "/x", "--to", "/y", "--window", "soon"],
            "argument --window: invalid float value",
        ),
        ([], "schedule: cannot schedule 'nothing'"),
    ],
)
def test_a_bad_job_is_one_line_before_anything_runs(job, message, tmp_path, monkeypatch, capsys):
    from runners.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        status = main(["schedule", "--every", "1s", "--", *job])
    except SystemExit as exc:  # the job's own argparse error
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--every", "0"], "--every '0': expected a positive duration"),
        (["--every", "soon"], "--every 'soon': expected a duration"),
        (["--every", "1m", "--max-ticks", "0"], "--max-ticks 0: expected 1 or more"),
        (["--every", "1m", "--lock-wait", "x"], "--lock-wait 'x': expected a duration"),
    ],
)
def test_schedule_flags_are_checked(flags, message, capsys):
    from runners.cli import main

    assert main(["schedule", *flags, "--", "ingest", "posts", "/x", "--to", "/y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_ticks_keep_to_the_grid():
    # on time: wait for the next slot, measured from the first tick's start (no drift)
    assert next_slot(3.0, 10.0, 0) == (1, 7.0)
    assert next_slot(12.5, 10.0, 1) == (2, 7.5)
    # overran by a little: the next tick starts at once, then back on the grid
    assert next_slot(10.5, 10.0, 0) == (1, 0.0)
    assert next_slot(10.5 + 2.0, 10.0, 1) == (2, 7.5)
    # overran several intervals: one tick now (never a backlog), in the slot it ended in
    assert next_slot(34.0, 10.0, 0) == (3, 0.0)
    with pytest.raises(ValueError, match="every=0"):
        next_slot(1.0, 0.0, 0)


def test_each_tick_is_incremental_with_its_own_run_id():
    job = parse_job(["--", "ingest", "posts", "/in", "--to", "s3://b/posts", "--lock-wait", "1m"])
    assert job.name == "ingest posts" and job.dataset == "s3://b/posts"
    argv = tick_argv(job, run_id="r1", lock_wait="0", lock_ttl="10m")
    assert argv[:2] == ["ingest", "posts"] and argv.count("--incremental") == 1
    assert argv[argv.index("--run-id") + 1] == "r1"
    # the job's own --lock-wait comes last, so it wins over the schedule's
    assert [a for i, a in enumerate(argv) if argv[i - 1] == "--lock-wait"] == ["0", "1m"]
    again = parse_job(["tokenize", "/a", "--to=/t", "--incremental"])
    assert tick_argv(again, run_id="r2", lock_wait="0", lock_ttl="5s").count("--incremental") == 1
    assert again.dataset == "/t"


def test_a_tick_is_one_line():
    when = datetime(2026, 11, 21, 23, 15, tzinfo=timezone.utc)
    line = TickLine(3, when, "committed", 4, 4.21, (1200, 1000, 3, 197), "").format()
    assert line == (
        "2026-11-21T23:15:00Z tick 3 committed version 4: in 1,200, written 1,000, rejected 3, "
        "deduplicated 197 (4.2 s)"
    )
    quiet = TickLine(4, when, "nothing-new", 4, 2.0, None, "nothing new, nothing committed")
    assert quiet.format().endswith(
        "tick 4 nothing-new version 4: nothing new, nothing committed (2.0 s)"
    )


def test_schedule_passes_progress_json_through_to_its_tick_log(sample, tmp_path):
    source, _ = sample
    proc = _schedule(
        source, tmp_path / "posts", "--every", "1s", "--max-ticks", "1", "--progress", "json"
    )
    rc, lines = _finish(proc)
    assert rc == 0, lines
    updates = [json.loads(line) for line in lines if line.startswith("{")]
    assert updates and all(u["tick"] == 1 and u["unit"] == "bytes" for u in updates)
    last = updates[-1]
    assert last["stage"] == "ingest posts: finished" and last["done"] == last["total"] > 0
    assert [t.split(" version")[0] for t in _tick_lines(lines)] == ["tick 1 committed"]


def test_what_a_tick_log_passes_through():
    update = '{"stage": "tokenize: read", "done": 5, "total": 9, "unit": "rows"}'
    assert json.loads(passed_through(update, 3, progress=True)) == {
        "tick": 3,
        **json.loads(update),
    }
    assert passed_through(update, 3, progress=False) is None
    stall = "shardsmith: warning: no progress for 5m00s in stage tokenize: read; ..."
    assert passed_through(stall, 2, progress=False) == (
        "tick 2: warning: no progress for 5m00s in stage tokenize: read; ..."
    )
    assert passed_through("shardsmith: error: something else", 2, progress=True) is None
    job = parse_job(["ingest", "posts", "/in", "--to", "/out"])
    argv = tick_argv(job, run_id="r", lock_wait="0", lock_ttl="1m")
    assert argv[argv.index("--progress") + 1] == "off"  # plain lines stay out of a tick's log
    argv = tick_argv(job, run_id="r", lock_wait="0", lock_ttl="1m", progress="json")
    assert argv[argv.index("--progress") + 1] == "json"
