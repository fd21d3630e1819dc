"""Fleet ingestion end to end (the CLI) against a full PyAV decode of the same files.

Input (DESIGN.md §7, issue 13): one recording session, 4 cameras x 60 s at 30 fps (the rear
camera at 3/4 of that), 1 s GOP with B-frames, noisy content (~6 Mb/s at 640x480), H.264 MP4.

Anchor, measured in the same run: decoding every frame of the same camera files with PyAV (no
conversion), over as many processes as the pipeline has cores, one file per task. Each figure
is anchor time / pipeline time (target: >= 1.0x at the default 2 fps, >= 3.0x with
``--keyframes-only``). The pipeline does everything, process start to exit: probing, sparse
decoding, resizing, JPEG, telemetry, quality, Parquet and the commit.

Memory: peak RSS of the CLI and its workers on the benchmark session, and of one process
ingesting a 1-minute and a 10-minute session window by window (those two should be about
equal: memory is bounded by one window, not by the session).

    python benchmarks/ingest_fleet.py [--size 640x480] [--duration 60] [--repeat 3] [--data DIR]

``--data DIR`` keeps the generated input there and reuses it when its configuration matches
(generating a 1280x960 session takes several minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing import Pool
from pathlib import Path

import av
from _peak_rss import PeakRss

from catalog import Dataset
from transforms.samples import FleetSampleConfig, generate_fleet_sample

BIN = Path(sys.executable).parent / "shardsmith"


def decode_all(path: str) -> int:
    with av.open(path) as container:
        container.streams.video[0].thread_count = 1
        return sum(1 for _ in container.decode(video=0))


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def anchor(files: list[str], workers: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and frames of a full decode of ``files``."""
    start, cpu = time.perf_counter(), children_cpu()
    with Pool(workers) as pool:
        frames = sum(pool.map(decode_all, files, chunksize=1))
        pool.close()
        pool.join()
    return time.perf_counter() - start, children_cpu() - cpu, frames


def ingest(src: Path, dataset: Path, *flags: str) -> tuple[float, float, int, dict]:
    """The CLI end to end: wall seconds, CPU seconds and peak RSS of the tree, the report."""
    shutil.rmtree(dataset, ignore_errors=True)
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(
        [str(BIN), "ingest", "fleet", str(src), "--to", str(dataset), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rss = PeakRss(proc.pid)
    _, err = proc.communicate()
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    peak = rss.stop()
    if proc.returncode:
        raise SystemExit(f"ingest fleet {src} failed:\n{err.decode()[-2000:]}")
    return seconds, cpu, peak, Dataset.open(str(dataset)).manifest().report


def sample(directory: Path, cfg: FleetSampleConfig) -> dict:
    """The sample in ``directory``, generated unless one of the same configuration is there."""
    truth_file = directory / "_SAMPLE.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth["config"] == json.loads(json.dumps(asdict(cfg))):
            return truth
        shutil.rmtree(directory)
    print(f"generating {directory} ...", file=sys.stderr)
    return generate_fleet_sample(str(directory), cfg)


_MEMORY_PROBE = """
import resource, sys
from transforms.fleet.discover import discover_sessions
from transforms.fleet.session import FleetOptions, ingest_session
(spec,) = discover_sessions(sys.argv[1])
windows = sum(1 for piece in ingest_session(spec, FleetOptions(), {}) if piece.row)
print(windows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(root: Path) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(root)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="640x480", help="camera frame size (640x480)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of footage (60)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate (30)")
    parser.add_argument("--noise", type=float, default=8.0, help="sensor noise sigma (8)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, help="keep the generated input here")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of measurements (1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1/10-minute probe")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    cfg = FleetSampleConfig(
        vehicles=1,
        sessions=1,
        events=0,
        duration_s=args.duration,
        fps=args.fps,
        width=width,
        height=height,
        noise=args.noise,
        layout="generic",
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = (args.data or tmp / "in") / f"{args.size}-{args.duration:g}s-noise{args.noise:g}"
        truth = sample(src, cfg)
        files = [str(src / c["file"]) for s in truth["sessions"] for c in s["cameras"]]
        footage = sum(s["duration_s"] for s in truth["sessions"])
        mbps = truth["bytes"] * 8 / footage / len(files) / 1e6
        # Rounds of anchor, default, keyframes-only one after the other: on a shared machine
        # each round sees about the same load; every round is printed, the ratios of the
        # medians last.
        rounds = []
        for _ in range(args.repeat):
            t_anchor, cpu_anchor, frames = anchor(files, args.workers)
            ours = ingest(src, tmp / "ds")
            key = ingest(src, tmp / "ds", "--keyframes-only")
            rounds.append(((t_anchor, cpu_anchor), ours[:3], key[:3], os.getloadavg()[0]))
            report = ours[3]
        memory = []
        if not args.no_memory:
            for minutes in (1, 10):
                mcfg = FleetSampleConfig(
                    vehicles=1,
                    sessions=1,
                    events=0,
                    cameras=1,
                    duration_s=60.0 * minutes,
                    fps=10,
                    layout="generic",
                )
                generate_fleet_sample(str(tmp / f"m{minutes}"), mcfg)
                memory.append((minutes, *peak_rss_mib(tmp / f"m{minutes}")))
    print(
        f"input: {len(files)} camera files, {footage:.0f} s of footage at {args.size}, "
        f"{frames:,} frames at {args.fps:g} fps, {mbps:.1f} Mb/s a camera; cores: "
        f"{args.workers}; load average {os.getloadavg()[0]:.2f}"
    )
    for (t_anchor, cpu_anchor), ours, key, load in rounds:
        print(
            f"anchor (decode every frame, {args.workers} processes) {t_anchor:6.2f} s, CPU "
            f"{cpu_anchor:6.2f} s | load average {load:.2f}"
        )
        for name, (t, cpu, peak) in (("(2 fps, 224x224)", ours), ("--keyframes-only", key)):
            print(
                f"  ingest fleet {name}: {t:6.2f} s  ratio {t_anchor / t:5.2f}x | CPU "
                f"{cpu:6.2f} s  ratio {cpu_anchor / cpu:5.2f}x | peak RSS {peak / 2**20:.0f} MiB"
            )
    # The CPU ratio is the work done, whatever else runs on the machine; on a loaded machine
    # the wall ratio also depends on how many threads each side has to compete with.
    a_wall, a_cpu = (statistics.median(r[0][i] for r in rounds) for i in (0, 1))
    for j, name in ((1, "(2 fps, 224x224)"), (2, "--keyframes-only")):
        wall, cpu = (statistics.median(r[j][i] for r in rounds) for i in (0, 1))
        print(
            f"median of {len(rounds)}: ingest fleet {name}: ratio {a_wall / wall:.2f}x wall, "
            f"{a_cpu / cpu:.2f}x CPU"
        )
    print(f"windows written: {report['records_written']}")
    for minutes, windows, mib in memory:
        print(
            f"peak RSS, one process, {minutes:2d}-minute session ({windows} windows): {mib:.0f} MiB"
        )


if __name__ == "__main__":
    main()
