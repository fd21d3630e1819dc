"""Fleet ingestion: seconds of 4-camera footage per second at 2 fps sampling, against a full decode.

Anchor, measured in the same run: decoding every frame of the same camera files with PyAV
(no conversion), over as many processes as the pipeline has workers, one file per task. The
figure is anchor time / pipeline time (DESIGN.md §7 target: >= 1.0x, i.e. faster than a full
decode). The pipeline does everything: probing, sparse decoding, resizing, JPEG, telemetry,
quality, Parquet and the commit.

Memory: peak RSS of one process ingesting a 1-minute and a 10-minute session window by window
(they should be about equal: memory is bounded by one window, not by the session).

    python benchmarks/ingest_fleet.py [--sessions 2] [--duration 30] [--fps 30] [--size 320x240]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool

import av

from pipelines.ingest_fleet import IngestFleetConfig, run
from runners.options import beam_options
from transforms.samples import FleetSampleConfig, generate_fleet_sample


def decode_all(path: str) -> int:
    with av.open(path) as container:
        container.streams.video[0].thread_count = 1
        return sum(1 for _ in container.decode(video=0))


_MEMORY_PROBE = """
import resource, sys
from transforms.fleet.discover import discover_sessions
from transforms.fleet.session import FleetOptions, ingest_session
(spec,) = discover_sessions(sys.argv[1])
windows = sum(1 for piece in ingest_session(spec, FleetOptions(), {}) if piece.row)
print(windows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(root: str) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, root], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per session")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    parser.add_argument("--size", default="320x240", help="camera frame size (default: 320x240)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        width, height = (int(v) for v in args.size.split("x"))
        cfg = FleetSampleConfig(
            vehicles=args.sessions,
            sessions=1,
            events=0,
            duration_s=args.duration,
            fps=args.fps,
            width=width,
            height=height,
            layout="generic",
        )
        truth = generate_fleet_sample(f"{tmp}/in", cfg)
        files = [f"{tmp}/in/{c['file']}" for s in truth["sessions"] for c in s["cameras"]]
        footage = sum(s["duration_s"] for s in truth["sessions"])
        start = time.perf_counter()
        with Pool(args.workers) as pool:
            frames = sum(pool.map(decode_all, files, chunksize=1))
        t_anchor = time.perf_counter() - start
        config = IngestFleetConfig(source=f"{tmp}/in", dataset=f"{tmp}/clips")
        start = time.perf_counter()
        report = run(config, beam_options("local", args.workers, []))
        t_pipeline = time.perf_counter() - start

        memory = []
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
            generate_fleet_sample(f"{tmp}/m{minutes}", mcfg)
            memory.append((minutes, *peak_rss_mib(f"{tmp}/m{minutes}")))
    print(
        f"input: {len(files)} camera files, {footage:.0f} s of 4-camera footage, {frames:,} "
        f"frames at {args.fps:g} fps; workers: {args.workers}"
    )
    print(
        f"anchor (decode every frame):    {t_anchor:6.2f} s  {footage / t_anchor:6.1f} footage-s/s"
    )
    print(
        f"ingest fleet (2 fps, 224x224):  {t_pipeline:6.2f} s  {footage / t_pipeline:6.1f} "
        f"footage-s/s  ratio {t_anchor / t_pipeline:.2f}x  ({report.records_written} windows)"
    )
    for minutes, windows, mib in memory:
        print(f"peak RSS, {minutes:2d}-minute session ({windows} windows): {mib:6.1f} MiB")


if __name__ == "__main__":
    main()
