"""What watching a run costs: `shardsmith ingest posts` with and without progress, same files.

Progress (issue 18) is reported by the workers per chunk of thousands of lines, at most every
half second, and read by a thread of the CLI. Measured in one run, alternating so that load
from elsewhere falls on every variant alike, ``--repeat`` times each:

* anchor: ``--progress off --stall-warning 0`` (nothing watched: no reports, no thread);
* ``--progress json`` (reports, the thread, a JSON line every 2 s);
* ``--progress bar`` (the same, and a rich bar redrawn every second; drawn into a pipe here,
  as on a terminal);
* the fixed cost: a one-line source end to end, with and without progress.

Figure = median time with progress / median anchor time (target: <= 1.02 at the size
measured). Input: realistic twarc2 lines (``transforms.samples.firehose``), 100,000 lines in
8 files by default; the default runner (one worker process per core).

    python benchmarks/progress_overhead.py [--lines 100000] [--files 8] [--repeat 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
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


def ingest(src: Path, dataset: Path, flags: list[str]) -> float:
    """Wall seconds of the CLI, start to exit (it must succeed)."""
    shutil.rmtree(dataset, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [*_CLI, "ingest", "posts", str(src), "--to", str(dataset), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"ingest posts {' '.join(flags)} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds


def measure(src: Path, work: Path, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(repeat):
        # A different variant goes first each round: none always runs on a cold cache.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(ingest(src, work / f"posts-{name}", VARIANTS[name]))
            print(f"  round {r + 1} {name}: {times[name][-1]:.2f} s", flush=True)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    base = statistics.median(times["off"])
    print(f"{title}: anchor (no progress) median {base:.2f} s of {times['off']}")
    for name in ("json", "bar"):
        med = statistics.median(times[name])
        print(f"  --progress {name}: median {med:.2f} s, ratio {med / base:.3f}")


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
        report(f"ingest posts, {args.lines:,} lines", measure(data, work, args.repeat))
        one = work / "one"
        one.mkdir()
        (one / "one.jsonl").write_bytes(_ONE_LINE)
        report("fixed cost (one line)", measure(one, work, args.repeat))
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
