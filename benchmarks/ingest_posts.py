"""Post ingestion at scale: `shardsmith ingest posts` against orjson and datatrove, same files.

Input: realistic twarc2 flattened tweets (``transforms.samples.firehose``: ~6.5 KB and 1.86
posts a line, every expansion, referenced tweets inlined and repeating), 1,000,000 lines in
40 files by default. Measured in one run, on the same files and cores:

* anchor: every line read and parsed with ``orjson.loads`` (nothing else), in as many processes
  as cores, one file per task -- after the input was read once, so that the anchor and the
  CLI both read it from the page cache (``_page_cache``);
* shardsmith: the CLI end to end (process start to exit: parsing, includes, cleaning,
  entities, dedup, edits, staging, Parquet writing, the commit), default runner and options;
  figure = anchor time / shardsmith time (DESIGN.md §7 target: >= 0.5x);
* the same for X API v2 pages and filtered-stream lines made of the same tweets, and for
  ``--dedup-text --scrub-pii`` (each on ``--variant-lines`` lines, with its own anchor);
* datatrove's JsonlReader -> ParquetWriter (8 tasks, as many workers as cores) on the same
  files, run in its own virtualenv (``make peers``); skipped with a note when absent;
* fixed cost: a one-line source ingested end to end (target <= 2 s);
* peak RSS of the whole process tree (CLI and workers) at 200k lines and at the full size.

    python benchmarks/ingest_posts.py [--lines 1000000] [--files 40] [--data DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import orjson
from _page_cache import warm
from _peak_rss import PeakRss
from _peers import run_datatrove

from catalog import Dataset
from transforms.posts.lines import open_decompressed, read_lines
from transforms.samples.firehose import api_forms, write_firehose

BIN = Path(sys.executable).parent / "shardsmith"


def parse_only(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in read_lines(open_decompressed(f), 16 << 20):
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(line.data)
            n += 1
    return n


def anchor(files: list[str], workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with Pool(workers) as pool:
        lines = sum(pool.map(parse_only, files, chunksize=1))
    return time.perf_counter() - start, lines


def ingest(src: Path, dataset: Path, *flags: str) -> tuple[float, int, dict]:
    """The CLI end to end: wall seconds, peak RSS of the tree, and the run report."""
    shutil.rmtree(dataset, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN), "ingest", "posts", str(src), "--to", str(dataset), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rss = PeakRss(proc.pid)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    peak = rss.stop()
    if proc.returncode:
        raise SystemExit(f"ingest posts {src} failed:\n{err.decode()[-2000:]}")
    return seconds, peak, Dataset.open(str(dataset)).manifest().report


def write_api_forms(files: list[str], out: Path) -> tuple[Path, Path]:
    """The tweets of ``files`` as X API v2 pages (100 a page) and filtered-stream lines."""
    pages, stream = out / "pages", out / "stream"
    pages.mkdir(parents=True)
    stream.mkdir(parents=True)
    for path in files:
        name = Path(path).name
        with open(path, "rb") as f:
            page_lines, stream_lines = api_forms(f.read().splitlines())
        (pages / name).write_bytes(b"".join(line + b"\n" for line in page_lines))
        (stream / name).write_bytes(b"".join(line + b"\n" for line in stream_lines))
    return pages, stream


def row(name: str, lines: int, anchor_s: float, ours_s: float, rss: int | None = None) -> None:
    mem = f"{rss / 2**20:7.0f} MiB" if rss else ""
    print(
        f"{name:<34} {lines:>10,} lines  orjson {anchor_s:7.2f} s  shardsmith {ours_s:7.2f} s "
        f"{lines / ours_s:9,.0f} lines/s  ratio {anchor_s / ours_s:5.2f}x  {mem}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--variant-lines", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", help="keep the generated input here (reused when present)")
    args = parser.parse_args()
    workers = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else tmp / "firehose"
        files = sorted(str(p) for p in data.glob("*.jsonl")) if data.exists() else []
        if len(files) != args.files:
            shutil.rmtree(data, ignore_errors=True)
            files = write_firehose(str(data), lines=args.lines, files=args.files)
        per_file = -(-args.lines // args.files)
        size = sum(os.path.getsize(f) for f in files)
        print(
            f"input: {len(files)} files, {size / 2**30:.2f} GiB, ~{per_file:,} lines each; "
            f"{workers} workers"
        )

        # The main figure: the whole input, default options, both read from the page cache.
        print(f"input read once to warm the page cache: {warm(files):.1f} s")
        t_anchor, lines = anchor(files, workers)
        t_ours, rss_full, report = ingest(data, tmp / "ds")
        print(
            f"records: read {report['records_in']:,}, written {report['records_written']:,}, "
            f"deduplicated {report['records_deduplicated']:,}"
        )
        row("twarc2, default", lines, t_anchor, t_ours, rss_full)

        # Variants on a subset of the files: API pages, stream lines, the costly options.
        subset = files[: max(1, args.variant_lines // per_file)]
        sub = tmp / "subset"
        sub.mkdir()
        for f in subset:
            os.symlink(f, sub / Path(f).name)
        t_sub_anchor, sub_lines = anchor(subset, workers)
        t_sub, rss_sub, _ = ingest(sub, tmp / "ds")
        row("twarc2, default (subset)", sub_lines, t_sub_anchor, t_sub, rss_sub)
        t, _, _ = ingest(sub, tmp / "ds", "--dedup-text", "--scrub-pii")
        row("twarc2, --dedup-text --scrub-pii", sub_lines, t_sub_anchor, t)
        pages, stream = write_api_forms(subset, tmp / "forms")
        for name, src in (
            ("X API v2 pages (lines = pages)", pages),
            ("filtered-stream lines", stream),
        ):
            src_files = sorted(str(p) for p in src.glob("*.jsonl"))
            a, n = anchor(src_files, workers)
            t, _, _ = ingest(src, tmp / "ds")
            row(name, n, a, t)

        # Peers, fixed cost, memory.
        t_peer = run_datatrove(
            "datatrove_posts.py", [str(data), str(tmp / "datatrove")], tmp / "datatrove", workers
        )
        if t_peer:
            print(
                f"datatrove reader -> Parquet: {t_peer:7.2f} s on the same {lines:,} lines; "
                f"shardsmith is {t_peer / t_ours:.2f}x datatrove's speed"
            )
        one = tmp / "one"
        one.mkdir()
        (one / "one.jsonl").write_bytes(Path(files[0]).read_bytes().split(b"\n", 1)[0] + b"\n")
        t_one, _, _ = ingest(one, tmp / "ds-one")
        print(f"fixed cost (one line, end to end): {t_one:.2f} s (target <= 2 s)")
        print(
            f"peak RSS, CLI and workers: {rss_sub / 2**20:.0f} MiB at {sub_lines:,} lines, "
            f"{rss_full / 2**20:.0f} MiB at {lines:,} lines "
            f"({(rss_full / rss_sub - 1):+.0%})"
        )


if __name__ == "__main__":
    main()
