"""The ``shardsmith`` command line: one verb per job (DESIGN.md §6).

User mistakes (a missing path, a bad flag value, a URL that holds no dataset) print one line and
exit with status 2; a run that fails on its data exits with status 1 after its report.
Heavy modules (Beam, PyAV) are imported inside the commands that need them, so ``--help`` and
the catalog commands start fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
from collections.abc import Sequence

from runners.errors import RecordsLost, UserError
from runners.options import add_runner_arguments

__all__ = ["build_parser", "main"]

log = logging.getLogger("shardsmith")

_DESCRIPTION = """\
shardsmith turns fleet video and social post streams into training-ready Arrow/Parquet shard
datasets. A dataset is a directory at any fsspec URL (a path, s3://bucket/x, memory://x) with
one manifest per committed version; readers see exactly the files of a version."""

_EPILOG = """\
examples:
  shardsmith demo ./demo                      generate both samples and show what was made
  shardsmith sample fleet ./fleet --broken    synthetic dashcam sessions, some files damaged
  shardsmith sample posts ./posts --seed 7    synthetic X API v2 pages, streams, deletes
  shardsmith ingest posts ./posts --to ./datasets/posts --dedup-text
  shardsmith ingest fleet ./fleet --to ./datasets/clips --window 10 --fps 2
  shardsmith tokenize ./datasets/posts ./datasets/clips --to ./datasets/tokens --seq-len 2048
  shardsmith query ./datasets/posts "SELECT lang, count(*) FROM posts GROUP BY lang"
  shardsmith inspect ./datasets/clips --contact-sheet sheet.png
  shardsmith history s3://bucket/posts --storage-options '{"anon": false}'
  shardsmith gc ./datasets/posts --min-age 0 --dry-run
  shardsmith gc ./datasets/posts --keep-versions 5 --keep-for 24h
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (what was wrong, where to look), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h


def _add_storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-options",
        metavar="JSON",
        help="fsspec options for the dataset URL, as JSON or @file.json (credentials, "
        "endpoint_url, ...); never written to manifests or logs",
    )


def _add_lock_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-wait",
        default="0",
        metavar="DURATION",
        help="wait this long (e.g. 10m) for another run writing the dataset to finish "
        "(default: 0 = exit at once, status 1)",
    )
    p.add_argument(
        "--lock-ttl",
        default="10m",
        metavar="DURATION",
        help="lease of the dataset's lock, renewed while the run lives; the lock of a run that "
        "died is taken over after it, or at once on the same host (default: %(default)s)",
    )
    # Set by `shardsmith schedule`, which then finds the run's outcome in the dataset.
    p.add_argument("--run-id", help=argparse.SUPPRESS)


def _seconds(text: str) -> float:
    """A ``--stall-warning`` style duration (90s, 5m, 0) in seconds; a usage error if not."""
    from runners.units import parse_duration

    try:
        return parse_duration(text, "").total_seconds()
    except UserError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a duration such as 90s, 5m or 1h (0 = never)"
        ) from None


def _add_progress_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "progress", "Shown on stderr while the run reads its sources; stdout keeps the report."
    )
    group.add_argument(
        "--progress",
        choices=("auto", "bar", "json", "plain", "off"),
        default="auto",
        help="auto: a progress bar on a terminal, else 'plain'; bar: files, bytes (or rows) of "
        "the planned total, records/s and ETA, redrawn every second; json: one JSON object per "
        'update every 2 s ({"stage", "done", "total", "unit", "rate", "eta_s", "elapsed_s", '
        "...}; the last has done == total); plain: one line every 30 s; off: nothing but "
        "stall warnings (default: %(default)s)",
    )
    group.add_argument(
        "--stall-warning",
        type=_seconds,
        default="5m",
        metavar="DURATION",
        help="warn when the workers report no progress for this long, naming the stage and "
        "the last source in flight (0 = never; default: %(default)s)",
    )


def _add_schedule_parser(sub) -> None:
    sched = sub.add_parser(
        "schedule",
        help="repeat an ingest or tokenize every interval, incrementally, one tick at a time",
        description="Run COMMAND (ingest posts, ingest fleet or tokenize, with --incremental "
        "added) as a child process every --every, from the start (no drift; a tick that "
        "overruns is followed at once by the next, never by two at a time). Each tick takes "
        "the dataset's lock, commits at most one version (a tokenize whose posts inputs removed "
        "posts since: a delete version first) and logs one line on stderr: time, "
        "tick, status, version, records in/written/rejected/deduplicated, seconds. A tick that "
        "finds the lock held logs it and waits for the next tick. The first SIGTERM/SIGINT "
        "finishes the current tick and exits 0; a second one stops the tick (its lock is "
        "released, its files left for gc) and exits 143/130.",
        epilog="example: shardsmith schedule --every 15m -- ingest posts /data/in "
        "--to s3://bucket/posts",
    )
    sched.add_argument(
        "--every", required=True, metavar="DURATION", help="interval between tick starts (15m)"
    )
    sched.add_argument(
        "--max-ticks",
        type=int,
        metavar="N",
        help="stop after N ticks (default: run until SIGTERM/SIGINT)",
    )
    sched.add_argument(
        "--lock-wait",
        default="0",
        metavar="DURATION",
        help="how long a tick waits for the dataset's lock before leaving it to the next tick "
        "(default: 0)",
    )
    sched.add_argument(
        "--lock-ttl",
        default="10m",
        metavar="DURATION",
        help="lease of the lock each tick takes (default: %(default)s)",
    )
    sched.add_argument(
        "--progress",
        choices=("json", "off"),
        default="off",
        help="json: each tick runs with --progress json and its JSON progress lines join the "
        'tick log as they come, each with "tick": N (default: off; stall warnings of a tick '
        "are passed through either way)",
    )
    sched.add_argument(
        "job",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND ...",
        help="ingest posts|ingest fleet|tokenize and its arguments, --to DATASET included",
    )


def _add_tokenize_parser(sub) -> None:
    tok = sub.add_parser(
        "tokenize",
        help="tokenize, globally shuffle and pack posts/clips datasets into a tokens dataset",
        description="Read a version of each input dataset, render documents (a post, a reply "
        "thread with --threads, or a clip window: event text plus, per camera, one placeholder "
        "token per 16x16 patch of every frame), tokenize them with a Hugging Face tokenizer, "
        "append EOS, shuffle them globally (key = hash(seed, document id); shard = key mod "
        "--shards; sorted by key in each shard), pack them to --seq-len and commit one tokens "
        "version. The same inputs and seed give byte-identical shards on any runner.",
        epilog="Any other --flag is passed to Beam's PipelineOptions.",
    )
    tok.add_argument("inputs", nargs="+", metavar="DATASET", help="posts or clips datasets")
    tok.add_argument(
        "--to", required=True, metavar="DATASET", dest="dataset", help="the tokens dataset"
    )
    tok.add_argument(
        "--tokenizer",
        metavar="NAME|PATH",
        help="a Hugging Face hub name, a directory or a tokenizer.json (default: the small "
        "byte-level BPE shipped with shardsmith, for trying things out)",
    )
    tok.add_argument(
        "--seq-len", type=int, default=2048, metavar="N", help="tokens per example (default: 2048)"
    )
    tok.add_argument(
        "--shards", type=int, metavar="N", help="output shards (default: ~1 per 256 MiB)"
    )
    tok.add_argument("--seed", type=int, default=0, help="shuffle seed (default: %(default)s)")
    tok.add_argument(
        "--pack",
        choices=("concat", "pad"),
        default="concat",
        help="concat: documents back to back, cut at --seq-len; pad: one document per "
        "example, truncated or padded (default: %(default)s)",
    )
    tok.add_argument(
        "--threads", action="store_true", help="a reply thread is one document (in time order)"
    )
    tok.add_argument(
        "--patch", type=int, default=16, metavar="PX", help="patch size of frames (default: 16)"
    )
    tok.add_argument(
        "--version", type=int, dest="input_version", metavar="V", help="read this input version"
    )
    tok.add_argument(
        "--incremental",
        action="store_true",
        help="skip input files a committed version already tokenized",
    )
    tok.add_argument(
        "--target-file-size",
        default="256MiB",
        metavar="SIZE",
        help="size of the Parquet files written (default: %(default)s)",
    )
    _add_storage_options(tok)
    _add_lock_arguments(tok)
    _add_progress_arguments(tok)
    add_runner_arguments(tok)
    tok.set_defaults(passthrough=True)


def _add_query_parsers(sub) -> None:
    query = sub.add_parser(
        "query",
        help="SQL over dataset versions (DuckDB): a table on a terminal, CSV/JSON/Parquet otherwise",
        description="Run one read-only SQL statement (SELECT, WITH, EXPLAIN) with DuckDB. Each "
        "dataset is a view named after its kind (posts, clips, tokens) or --as NAME, over exactly "
        "the files of its version (latest, or --version), with the dt partition column. SQL "
        "helpers: detokenize(input_ids), jpeg_width(frame), jpeg_height(frame).",
        epilog='example: shardsmith query ./datasets/posts "SELECT lang, count(*) AS n FROM posts '
        'GROUP BY lang ORDER BY n DESC"',
    )
    query.add_argument(
        "datasets_and_sql", nargs="+", metavar="DATASET... SQL", help="datasets, then the SQL"
    )
    query.add_argument(
        "--version",
        type=int,
        action="append",
        metavar="V",
        help="read version V (give it once per dataset when there are several)",
    )
    query.add_argument(
        "--as",
        dest="alias",
        action="append",
        metavar="NAME",
        help="view names, one per dataset (default: the kind)",
    )
    query.add_argument(
        "--format",
        choices=("table", "csv", "json", "parquet"),
        help="table on a terminal, csv otherwise (json: one object per line)",
    )
    query.add_argument("--out", metavar="PATH", help="write the result here instead of stdout")
    query.add_argument(
        "--limit", type=int, default=50, metavar="N", help="rows shown as a table (default: 50)"
    )
    _add_storage_options(query)

    inspect = sub.add_parser(
        "inspect",
        help="what a dataset version holds: files, rows, schema, partitions, nulls, per-kind stats",
        description="Kind, version history, files, rows, bytes, schema, rows per partition and "
        "null counts per column, and per kind: posts (languages, hashtags, authors, time "
        "range), clips (vehicles, sessions, cameras, hours of footage, quality, rejects by "
        "reason), tokens (tokens, document lengths, shard balance, tokenizer, seed).",
    )
    inspect.add_argument("dataset", metavar="DATASET")
    inspect.add_argument("--version", type=int, metavar="V", help="default: the latest")
    inspect.add_argument(
        "--contact-sheet",
        metavar="PNG",
        help="clips: draw sampled frames (cameras x time, with timestamps) of some clips",
    )
    inspect.add_argument(
        "--clip",
        action="append",
        metavar="CLIP_ID",
        help="clips to draw on the contact sheet (default: the first 4)",
    )
    inspect.add_argument(
        "--histogram",
        metavar="PNG",
        help="tokens: document lengths; posts: text lengths; clips: blur scores",
    )
    inspect.add_argument("--json", action="store_true", help="the summary as one JSON object")
    _add_storage_options(inspect)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render the README's command list)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("shardsmith")
    except PackageNotFoundError:
        ver = "unknown"
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="shardsmith", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=fmt
    )
    parser.add_argument("--version", action="version", version=f"shardsmith {ver}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="generate both samples, ingest them, and show what shardsmith made",
        description="Generate a fleet sample and a post-stream sample under DIR/samples "
        "(with a few broken inputs on purpose), ingest the posts into DIR/datasets/posts and "
        "the fleet into DIR/datasets/clips, and print what was made and the run reports.",
    )
    demo.add_argument(
        "dir",
        nargs="?",
        default="shardsmith-demo",
        metavar="DIR",
        help="where to write (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=0, help="sample seed (default: %(default)s)")

    sample = sub.add_parser(
        "sample",
        help="generate synthetic inputs: fleet recordings or post streams",
        description="Synthetic but realistic inputs, deterministic for a seed. DIR/_SAMPLE.json "
        "records what was generated (tests compare pipeline output against it).",
    )
    kinds = sample.add_subparsers(dest="sample_kind", metavar="KIND", required=True)
    fleet = kinds.add_parser(
        "fleet",
        help="multi-camera H.264 sessions (teslacam and generic layouts) with telemetry",
        description="Dashcam sessions in both layouts: TeslaCam/{SavedClips,SentryClips,"
        "RecentClips}/<event>/<ts>-<camera>.mp4 + event.json, and <vehicle>/<session>/"
        "<camera>.mp4 + telemetry.{csv,jsonl,parquet}. Every frame shows its time since the "
        "session start as a binary clock in its top band.",
    )
    fleet.add_argument("dir", metavar="DIR")
    fleet.add_argument("--seed", type=int, default=0)
    fleet.add_argument("--layout", choices=("teslacam", "generic", "both"), default="both")
    fleet.add_argument("--vehicles", type=int, default=2, help="generic layout (default: 2)")
    fleet.add_argument("--sessions", type=int, default=2, help="per vehicle (default: 2)")
    fleet.add_argument("--events", type=int, default=3, help="teslacam events (default: 3)")
    fleet.add_argument(
        "--segments", type=int, default=2, help="teslacam files per camera and event (default: 2)"
    )
    fleet.add_argument("--cameras", type=int, default=4, help="1 to 4 (default: 4)")
    fleet.add_argument(
        "--duration", type=float, default=8.0, help="seconds per session / segment (default: 8)"
    )
    fleet.add_argument("--fps", type=float, default=10.0, help="frame rate (default: 10)")
    fleet.add_argument(
        "--size",
        type=_size,
        default=(320, 240),
        metavar="WxH",
        help="frame size: even width, height divisible by 4 (default: 320x240)",
    )
    fleet.add_argument("--gop", type=float, default=1.0, help="keyframe interval, s (default: 1)")
    fleet.add_argument(
        "--broken",
        action="store_true",
        help="also write truncated, empty and fake MP4s, a broken event.json "
        "and a bad telemetry row",
    )
    posts = kinds.add_parser(
        "posts",
        help="X API v2 pages, filtered-stream lines, twarc2 tweets, plain posts, deletes",
        description="JSONL post streams in every input form (plain, .gz and .zst), with "
        "replies, quotes, reposts, edits, media, many languages, duplicates across files, "
        "compliance deletes and a few malformed lines.",
    )
    posts.add_argument("dir", metavar="DIR")
    posts.add_argument("--seed", type=int, default=0)
    posts.add_argument("--users", type=int, default=30, help="accounts (default: 30)")
    posts.add_argument("--posts", type=int, default=300, help="posts (default: 300)")
    posts.add_argument("--days", type=int, default=5, help="time span (default: 5)")
    posts.add_argument("--malformed", type=int, default=6, help="bad lines (default: 6)")

    ingest = sub.add_parser(
        "ingest",
        help="ingest raw sources into a dataset: posts (post streams) or fleet (dashcam video)",
        description="Ingest raw sources into a dataset version. Every record read is written, "
        "rejected with a reason, deduplicated, deleted by a compliance event or skipped, and "
        "the run report proves it.",
    )
    what = ingest.add_subparsers(dest="ingest_kind", metavar="KIND", required=True)
    posts_in = what.add_parser(
        "posts",
        help="X API v2 pages, stream lines, twarc2 tweets, plain posts, compliance events",
        description="Ingest post streams (JSON Lines, plain, .gz or .zst; every form detected "
        "per line) into a posts dataset: includes joined, text unescaped and NFC-normalized, "
        "entities extracted, only the latest version of edited posts kept, duplicates dropped "
        "(within the run and against the dataset), compliance deletes applied to this run and "
        "to committed versions. Malformed lines go to rejects/ with file, line and reason.",
        epilog="Any other --flag is passed to Beam's PipelineOptions.",
    )
    posts_in.add_argument(
        "sources",
        nargs="*",
        metavar="SRC",
        help="files, directories or globs at any fsspec URL (ids of batch compliance lines "
        "there are post ids)",
    )
    posts_in.add_argument(
        "--user-compliance",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="X user batch compliance results ({id, action, reason} lines of user ids): "
        "every post of a deleted, deactivated, protected or suspended account is removed",
    )
    posts_in.add_argument(
        "--to",
        required=True,
        metavar="DATASET",
        dest="dataset",
        help="the posts dataset (created if absent)",
    )
    posts_in.add_argument(
        "--incremental",
        action="store_true",
        help="skip sources a committed version already consumed",
    )
    posts_in.add_argument(
        "--dedup-text",
        action="store_true",
        help="also drop posts whose normalized text was already seen (reposts, copy-paste spam)",
    )
    posts_in.add_argument(
        "--dedup-near",
        type=float,
        default=None,
        metavar="THRESHOLD",
        help="also drop posts whose text is a near-duplicate of an earlier post's (by "
        "created_at, then post_id) or of a committed post's: estimated Jaccard similarity of "
        "their character 5-grams (text normalized as for --dedup-text) at least THRESHOLD, "
        "in (0, 1], e.g. 0.8; each removed post and its kept twin are listed in "
        "near_duplicates/<run_id>.parquet",
    )
    posts_in.add_argument(
        "--scrub-pii",
        action="store_true",
        help="replace e-mail addresses and phone numbers with placeholders",
    )
    posts_in.add_argument(
        "--langs",
        default="",
        metavar="L1,L2",
        help="keep only these languages, X's codes (e.g. en,ja; a post without lang by its "
        "detected language; default: all)",
    )
    posts_in.add_argument(
        "--min-chars",
        type=int,
        default=0,
        metavar="N",
        help="drop posts with less text (default: 0)",
    )
    posts_in.add_argument("--drop-reposts", action="store_true", help="drop reposts (retweets)")
    posts_in.add_argument(
        "--max-line-bytes",
        default="16MiB",
        metavar="SIZE",
        help="reject longer lines (default: %(default)s)",
    )
    posts_in.add_argument(
        "--max-reject-rate",
        type=float,
        default=0.01,
        metavar="FRACTION",
        help="above this, commit nothing and exit 1 (default: %(default)s)",
    )
    posts_in.add_argument(
        "--target-file-size",
        default="256MiB",
        metavar="SIZE",
        help="size of the Parquet files written (default: %(default)s)",
    )
    _add_storage_options(posts_in)
    _add_lock_arguments(posts_in)
    _add_progress_arguments(posts_in)
    add_runner_arguments(posts_in)
    posts_in.set_defaults(passthrough=True)

    fleet_in = what.add_parser(
        "fleet",
        help="multi-camera dashcam sessions and telemetry into time-aligned clips",
        description="Ingest recording sessions (teslacam and generic layouts) into a clips "
        "dataset: each session cut into windows on wall-clock time across its cameras, the "
        "frame of each camera nearest to each sample time decoded (only those: keyframe seeks, "
        "non-reference frames skipped), resized by libswscale, JPEG-encoded; telemetry "
        "resampled onto the sample times; quality metrics per window. Broken files, event.json "
        "and telemetry rows go to rejects/ with file, time or row, and the decoder's message.",
        epilog="Any other --flag is passed to Beam's PipelineOptions.",
    )
    fleet_in.add_argument("source", metavar="SRC", help="the root holding the sessions")
    fleet_in.add_argument(
        "--to",
        required=True,
        metavar="DATASET",
        dest="dataset",
        help="the clips dataset (created if absent)",
    )
    fleet_in.add_argument(
        "--layout",
        choices=("auto", "teslacam", "generic"),
        default="auto",
        help="auto finds both (default: %(default)s)",
    )
    fleet_in.add_argument(
        "--window",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="window length (default: %(default)s)",
    )
    fleet_in.add_argument(
        "--fps", type=float, default=2.0, help="samples per second (default: %(default)s)"
    )
    fleet_in.add_argument(
        "--size",
        type=_size,
        default=(224, 224),
        metavar="WxH",
        help="output frame size, scaled without crop (default: 224x224)",
    )
    fleet_in.add_argument(
        "--jpeg-quality", type=int, default=90, metavar="Q", help="1 to 95 (default: %(default)s)"
    )
    fleet_in.add_argument(
        "--keyframes-only",
        action="store_true",
        help="take the nearest keyframe instead of the nearest frame (fastest)",
    )
    fleet_in.add_argument(
        "--raw-fps",
        type=float,
        default=None,
        metavar="FPS",
        help="frame rate of raw .h264/.hevc files, which carry no times (default: the rate "
        "each declares in its SPS/VPS timing info; a file declaring none is rejected)",
    )
    fleet_in.add_argument(
        "--tag-threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a threshold of the clips' tags, repeatable: hard_brake (m/s², default -4), "
        "hard_brake_s (0.3), lane_change (steering degrees, 5), stop_from (m/s, 3), "
        "stop_below (m/s, 0.5)",
    )
    fleet_in.add_argument(
        "--incremental",
        action="store_true",
        help="skip sessions whose files a committed version already consumed",
    )
    fleet_in.add_argument(
        "--max-reject-rate",
        type=float,
        default=0.01,
        metavar="FRACTION",
        help="above this, commit nothing and exit 1 (default: %(default)s)",
    )
    fleet_in.add_argument(
        "--target-file-size",
        default="256MiB",
        metavar="SIZE",
        help="size of the Parquet files written (default: %(default)s)",
    )
    _add_storage_options(fleet_in)
    _add_lock_arguments(fleet_in)
    _add_progress_arguments(fleet_in)
    add_runner_arguments(fleet_in)
    fleet_in.set_defaults(passthrough=True)

    _add_tokenize_parser(sub)
    _add_schedule_parser(sub)
    _add_query_parsers(sub)

    history = sub.add_parser(
        "history",
        help="list a dataset's versions",
        description="Every committed version: operation, run, rows and files live, rows the "
        "run added and rejected, time (UTC).",
    )
    history.add_argument("dataset", metavar="DATASET")
    history.add_argument("--json", action="store_true", help="one JSON object per version")
    _add_storage_options(history)

    gc = sub.add_parser(
        "gc",
        help="remove files no version references; expire old versions (--keep-versions/--keep-for)",
        description="Remove data, reject and temporary files left by crashed or failed runs. "
        "Files younger than --min-age are kept: they may belong to a run still writing. With "
        "--keep-versions and/or --keep-for, also expire every older version (the latest is "
        "always kept; given both, a version either keeps is kept) and delete every file that "
        "only expired versions list, so content removed by a later version (a compliance "
        "delete) is gone from the store. Reading an expired version is an error naming the "
        "oldest live one. Takes the dataset's lock, like every writing run; a gc killed midway "
        "leaves every kept version readable, and the next gc finishes its work.",
        epilog="example: shardsmith gc s3://bucket/posts --keep-versions 10 --keep-for 7d",
    )
    gc.add_argument("dataset", metavar="DATASET")
    gc.add_argument(
        "--min-age",
        default="1h",
        help="only remove orphans older than this (default: %(default)s; 0 = all)",
    )
    gc.add_argument(
        "--keep-versions",
        type=int,
        metavar="N",
        help="keep the newest N versions (N >= 1), expire older ones",
    )
    gc.add_argument(
        "--keep-for",
        metavar="DURATION",
        help="keep every version committed within this long (e.g. 24h, 7d), expire older ones",
    )
    gc.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be expired and removed; change nothing (takes no lock)",
    )
    _add_storage_options(gc)
    _add_lock_arguments(gc)
    return parser


# Each command lives in its own module, imported only when it runs.
_COMMANDS = {
    "demo": ("runners.commands.samples", "demo"),
    "sample": ("runners.commands.samples", "sample"),
    "ingest": ("runners.commands.ingest", "ingest"),
    "tokenize": ("runners.commands.tokenize", "tokenize"),
    "query": ("runners.commands.query", "query"),
    "inspect": ("runners.commands.inspect", "inspect"),
    "history": ("runners.commands.datasets", "history"),
    "gc": ("runners.commands.datasets", "gc"),
    "schedule": ("runners.commands.schedule", "schedule"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shardsmith`` console script; returns the exit status."""
    status = _main(argv)
    if argv is None and "duckdb" not in sys.modules:
        # The process ends with this command (console script, python -m). Its last garbage
        # collection would walk every object Beam and pyarrow made (~0.35 s); frozen ones are
        # skipped. Not when called with argv (tests, other Python code): frozen objects stay.
        # Not after DuckDB was used: its bindings (nanobind) print every instance still alive
        # at exit as a leak, and frozen objects are never collected.
        gc.freeze()
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.passthrough_args = extra
    # The process ends with this command (console script, python -m): see main().
    args.own_process = argv is None
    # Beam and its dependencies warn about optional extras at import; only errors matter here.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from catalog import CommitConflict, DatasetError
    from schemas import ManifestError

    try:
        module, name = _COMMANDS[args.command]
        status = getattr(importlib.import_module(module), name)(args)
    except (UserError, DatasetError, ManifestError) as exc:
        print(f"shardsmith: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(
            f"shardsmith: error: {exc.filename or exc}: no such file or directory", file=sys.stderr
        )
        return 2
    except PermissionError as exc:
        print(f"shardsmith: error: {exc}", file=sys.stderr)
        return 2
    except CommitConflict as exc:
        print(f"shardsmith: commit failed: {exc}", file=sys.stderr)
        return 1
    except RecordsLost as exc:
        print(f"shardsmith: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # Storage trouble (network, quota, a store's error): one line, not a traceback.
        print(f"shardsmith: storage error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("shardsmith: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
