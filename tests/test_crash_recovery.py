"""Crash recovery: every pipeline SIGKILLed at random points of a run (before, during and after
its writes, during its commit). Each time the dataset is readable at its last committed
version, ``gc`` removes exactly what the killed run left, and a re-run gives the content of an
uninterrupted run. Also: determinism (two runs, same content; tokens: same bytes) and two
ingests racing on one dataset (nothing duplicated, nothing lost).

``SHARDSMITH_CRASH_POINTS`` sets the kills per pipeline: 6 in ``make test``, 20 (the issue's
figure) with ``SHARDSMITH_CRASH_POINTS=20 make test`` or ``make test-long``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from catalog import Dataset, collect_garbage
from catalog.parquet import read_parquet
from transforms.samples import (
    FleetSampleConfig,
    PostsSampleConfig,
    generate_fleet_sample,
    generate_posts_sample,
)

BIN = Path(sys.executable).parent / "shardsmith"
POINTS = int(os.environ.get("SHARDSMITH_CRASH_POINTS", "6"))
FAST = ["--direct_running_mode=in_memory"]  # one process: a run takes ~2 s, kills stay cheap


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    generate_posts_sample(str(root / "posts"), PostsSampleConfig(posts=150, seed=8))
    fleet = FleetSampleConfig(layout="generic", vehicles=1, sessions=1, cameras=2, duration_s=4.0)
    generate_fleet_sample(str(root / "fleet"), fleet)
    return root


def _commands(samples: Path, out: Path) -> dict[str, list[str]]:
    return {
        "posts": [
            "ingest",
            "posts",
            str(samples / "posts"),
            "--to",
            str(out / "posts"),
            "--max-reject-rate",
            "0.1",
        ],
        "clips": [
            "ingest",
            "fleet",
            str(samples / "fleet"),
            "--to",
            str(out / "clips"),
            "--window",
            "2",
        ],
        "tokens": [
            "tokenize",
            str(samples.parent / "reference" / "posts"),
            str(samples.parent / "reference" / "clips"),
            "--to",
            str(out / "tokens"),
            "--seq-len",
            "128",
            "--shards",
            "2",
        ],
    }


def _run(args: list[str], kill_after: float | None = None) -> int:
    """Run a command in its own process group; SIGKILL the whole group after ``kill_after``."""
    proc = subprocess.Popen(
        [str(BIN), *args, *FAST],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after is None:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return 0
    try:
        proc.wait(kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    return proc.returncode


def _content(url: str) -> list:
    ds = Dataset.open(url)
    key = {"posts": "post_id", "clips": "clip_id", "tokens": None}[ds.kind]
    if ds.kind == "tokens":
        return [f.checksum for f in sorted(ds.files(), key=lambda f: f.path)]
    table = pa.concat_tables(read_parquet(ds.fs, ds.path(f.path)) for f in ds.files())
    return table.sort_by(key).to_pylist()


@pytest.fixture(scope="module")
def reference(samples):
    """Uninterrupted runs, twice: the content every recovered run must reach."""
    out = samples.parent / "reference"
    again = samples.parent / "again"
    timings = {}
    for target in (out, again):
        for name, args in _commands(samples, target).items():
            started = time.monotonic()
            _run(args)
            timings[name] = time.monotonic() - started
    return out, again, timings


def test_two_uninterrupted_runs_give_the_same_content(reference):
    out, again, _ = reference
    for kind in ("posts", "clips", "tokens"):
        assert _content(str(out / kind)) == _content(str(again / kind)), kind


@pytest.mark.parametrize("kind", ["posts", "clips", "tokens"])
def test_killed_at_random_points_recovers(samples, reference, tmp_path, kind):
    out, _, timings = reference
    args = _commands(samples, tmp_path)[kind]
    url = str(tmp_path / kind)
    rng = random.Random(f"crash-{kind}")
    outcomes = {"killed before start": 0, "killed before commit": 0, "committed": 0}

    def kill_and_check(delay: float) -> str:
        """Run, SIGKILL after ``delay`` s, check the dataset; what the kill interrupted."""
        _run(args, delay)
        if not Path(url, "dataset.json").exists():
            return "killed before start"  # killed before the dataset was even created
        ds = Dataset.open(url)
        version = ds.latest_version()
        assert version in (0, 1), delay
        for f in ds.files():
            assert read_parquet(ds.fs, ds.path(f.path)).num_rows == f.rows  # readable
        collect_garbage(ds, min_age=timedelta(0))
        on_disk = {p.relative_to(url).as_posix() for p in Path(url, "data").rglob("*.parquet")}
        assert on_disk == {f.path for f in ds.files()}, delay  # gc left only live files
        if version == 0:
            return "killed before commit"
        # A committed run: start again from an empty dataset for the next kill.
        assert _content(url) == _content(str(out / kind))
        shutil.rmtree(url)
        return "committed"

    for _ in range(POINTS):
        # Spread over the whole run, start-up and commit included.
        outcomes[kill_and_check(rng.uniform(0.0, timings[kind] * 1.1))] += 1
    # The point of the test is kills mid-run. The reference run was timed once: on a machine
    # whose load changed since, the random points can all miss the run's middle, so aim closer
    # (halve the delay after a commit, lengthen it after a kill before the start) a few times.
    delay = timings[kind] / 2
    for _ in range(8):
        if outcomes["killed before commit"] >= max(1, POINTS // 4):
            break
        outcome = kill_and_check(delay)
        outcomes[outcome] += 1
        delay *= 0.5 if outcome == "committed" else 1.5 if outcome == "killed before start" else 1
    print(f"{kind}: {sum(outcomes.values())} kills, {outcomes}")  # figures for the README (-s)
    assert outcomes["killed before commit"] >= max(1, POINTS // 4), outcomes
    # After all the kills, a run to the end gives exactly the uninterrupted content.
    _run(args)
    assert _content(url) == _content(str(out / kind))


def test_two_ingests_at_once_lose_nothing_and_duplicate_nothing(samples, tmp_path):
    files = sorted(p for p in (samples / "posts").iterdir() if not p.name.startswith("_"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i, f in enumerate(files):
        # Compliance deletes go to both runs: a delete processed before its post arrives is not
        # remembered (no tombstones yet), and the order of the two runs is up to the lock.
        for target in (a, b) if f.name.startswith("compliance") else (a if i % 2 else b,):
            shutil.copy(f, target / f.name)
    shutil.copy(files[1], a / ("again-" + files[1].name))  # the same posts arrive twice
    url = str(tmp_path / "posts")
    runs = [
        subprocess.Popen(
            [
                str(BIN),
                "ingest",
                "posts",
                str(src),
                "--to",
                url,
                "--max-reject-rate",
                "0.2",
                "--lock-wait",
                "5m",
                *FAST,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in (a, b)
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    together = tmp_path / "together"
    _run(
        [
            "ingest",
            "posts",
            str(samples / "posts"),
            "--to",
            str(together),
            "--max-reject-rate",
            "0.2",
        ]
    )
    ids = [row["post_id"] for row in _content(url)]
    assert len(ids) == len(set(ids))  # nothing twice
    assert sorted(ids) == sorted(row["post_id"] for row in _content(str(together)))  # nothing lost
    assert Dataset.open(url).latest_version() == 2
