"""What watching a run costs: `shardsmith ingest posts` with and without progress, same files.

Progress (issue 18) is reported by the workers per chunk of thousands of lines, at most every
half second, and read by a thread of the CLI. Measured in one run, alternating so that load
from elsewhere falls on every variant alike, ``--repeat`` times each:

* anchor: ``--progress off --stall-warning 0`` (nothing watched: no reports, no thread);
* ``--progress json`` (reports, the thread, a JSON line every 2 s);
* ``--progress bar`` (the same, and a rich bar redrawn every second; drawn into a pipe here,
  as on a terminal);
* the fixed cost: a one-line source end to end, with and without progress;
* an upper bound from the parts' costs, each timed thousands of times: a reporter call per
  chunk in the workers, and the driver's poll (read the reports, make an update) twice a
  second.

Figures = median time with progress / median anchor time, of wall time and of the CPU time of
the CLI and its workers (target: <= 1.02 at the size measured). On a machine shared with other
work the wall ratio is noisy; the CPU ratio much less so. Input: realistic twarc2 lines (``transforms.samples.firehose``), 100,000 lines in
8 files by default; the default runner (one worker process per core).

    python benchmarks/progress_overhead.py [--lines 100000] [--files 8] [--repeat 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transforms.samples.firehose import write_firehose

_CLI = [sys.executable, "-m", "runners.cli"]
VARIANTS = {
    "off": ["--progress", "off", "--stall-warning", "0"],
    "json": ["--progress", "json"],
    "bar": ["--progress", "bar"],
}
_ONE_LINE = (
    b'{"id": "1", "text": "hello world", "created_at": "2026-11-20T08:00:00.000Z", '
    b'"author_id": "7", "lang": "en"}\n'
)


def ingest(src: Path, dataset: Path, flags: list[str]) -> tuple[float, float]:
    """Wall seconds of the CLI, start to exit, and the CPU seconds (user + system) of it and
    its worker processes (it must succeed)."""
    shutil.rmtree(dataset, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [*_CLI, "ingest", "posts", str(src), "--to", str(dataset), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"ingest posts {' '.join(flags)} failed:\n{done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def measure(src: Path, work: Path, repeat: int) -> dict[str, list[tuple[float, float]]]:
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(repeat):
        # A different variant goes first each round: none always runs on a cold cache.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(ingest(src, work / f"posts-{name}", VARIANTS[name]))
            wall, cpu = times[name][-1]
            print(f"  round {r + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return times


def report(title: str, times: dict[str, list[tuple[float, float]]]) -> None:
    """Medians, and the ratios to the anchor: of wall time (what a user waits; other load on
    the machine moves it) and of CPU time (the work done; load moves it much less)."""
    base_wall = statistics.median(w for w, _ in times["off"])
    base_cpu = statistics.median(c for _, c in times["off"])
    print(f"{title}: anchor (no progress) median {base_wall:.2f} s wall, {base_cpu:.2f} s CPU")
    for name in ("json", "bar"):
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        print(
            f"  --progress {name}: median {wall:.2f} s wall (ratio {wall / base_wall:.3f}), "
            f"{cpu:.2f} s CPU (ratio {cpu / base_cpu:.3f})"
        )


def bound(anchor_cpu_s: float, wall_s: float, chunks: int) -> None:
    """An upper bound of the overhead from the cost of its parts, measured here one by one
    (load moves these too, but every part is timed thousands of times): a reporter call per
    chunk of lines in the workers, and on the driver, twice a second, reading the report files
    and making an update."""
    import io
    import json

    from runners.progress_tally import ProgressPlan, Tally
    from runners.progress_views import describe
    from transforms.progress import ProgressTarget, Reporter

    with tempfile.TemporaryDirectory() as tmp:
        reporter = Reporter(ProgressTarget(tmp))
        n = 20_000
        start = time.process_time()
        for i in range(n):
            reporter.add(f"s{i % 8}", bytes=4096, records=100)
        per_call = (time.process_time() - start) / n
        start = time.process_time()
        for i in range(n):
            reporter.add(f"s{i % 8}", bytes=4096, records=100)
            reporter.flush()  # a write: at most twice a second per worker
        per_write = (time.process_time() - start) / n
        reporter.close()
        lines = [
            json.dumps({"k": f"s{i % 8}", "u": "", "ev": "at", "n": {"bytes": i, "records": i}})
            for i in range(16)
        ]
        plan = ProgressPlan(
            "ingest posts", "bytes", {f"s{i}": {"bytes": 1 << 30} for i in range(8)}
        )
        tally = Tally(plan, started=time.monotonic())
        out = io.StringIO()
        polls = 2_000
        start = time.process_time()
        for _ in range(polls):
            os.listdir(tmp)
            for line in lines:
                tally.feed(line, time.monotonic())
            snap = tally.snapshot(time.monotonic())
            out.write(json.dumps(snap.to_dict()) + describe(snap))
        per_poll = (time.process_time() - start) / polls
    writes = 2 * wall_s * (os.cpu_count() or 1)
    cost = chunks * per_call + writes * per_write + 2 * wall_s * per_poll
    print(
        f"bound: {per_call * 1e6:.1f} us per reporter call x {chunks:,} chunks + "
        f"{per_write * 1e6:.1f} us per write x {writes:.0f} writes + "
        f"{per_poll * 1e3:.2f} ms per driver poll x {2 * wall_s:.0f} polls = {cost * 1e3:.1f} ms "
        f"of {anchor_cpu_s:.1f} s CPU: at most {cost / anchor_cpu_s:.3%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", help="keep the generated input here (reused when present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shardsmith-bench-") as tmp:
        work = Path(tmp)
        data = Path(args.data) if args.data else work / "firehose"
        if not (data.exists() and any(data.glob("*.jsonl"))):
            write_firehose(str(data), lines=args.lines, files=args.files)
        size = sum(p.stat().st_size for p in data.glob("*.jsonl"))
        print(f"input: {data} ({size / 2**20:,.0f} MiB); load: {os.getloadavg()}")
        times = measure(data, work, args.repeat)
        report(f"ingest posts, {args.lines:,} lines", times)
        # One report per chunk of at most 10,000 records (ParsePosts' default); a twarc2 line
        # holds ~1.9 posts.
        bound(
            statistics.median(c for _, c in times["off"]),
            statistics.median(w for w, _ in times["off"]),
            chunks=args.lines * 2 // 10_000 + args.files,
        )
        one = work / "one"
        one.mkdir()
        (one / "one.jsonl").write_bytes(_ONE_LINE)
        report("fixed cost (one line)", measure(one, work, args.repeat))
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
