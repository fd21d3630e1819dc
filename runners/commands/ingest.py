"""``shardsmith ingest posts|fleet``: raw sources into a dataset version."""

from __future__ import annotations


def _posts_config(args, storage_options):
    from pipelines.ingest_posts import IngestPostsConfig
    from runners.units import parse_size

    return IngestPostsConfig(
        sources=tuple(args.sources),
        user_compliance=tuple(args.user_compliance),
        dataset=args.dataset,
        dedup_text=args.dedup_text,
        dedup_near=args.dedup_near,
        scrub_pii=args.scrub_pii,
        langs=tuple(sorted(filter(None, (x.strip() for x in args.langs.split(","))))),
        min_chars=args.min_chars,
        drop_reposts=args.drop_reposts,
        incremental=args.incremental,
        max_line_bytes=parse_size(args.max_line_bytes, "--max-line-bytes"),
        max_reject_rate=args.max_reject_rate,
        target_file_bytes=parse_size(args.target_file_size, "--target-file-size"),
        storage_options=storage_options,
    )


def _fleet_config(args, storage_options):
    from pipelines.ingest_fleet import IngestFleetConfig
    from runners.units import parse_size

    return IngestFleetConfig(
        source=args.source,
        dataset=args.dataset,
        layout=args.layout,
        window_s=args.window,
        fps=args.fps,
        size=args.size,
        jpeg_quality=args.jpeg_quality,
        keyframes_only=args.keyframes_only,
        raw_fps=args.raw_fps,
        tag_thresholds=tuple(args.tag_threshold),
        incremental=args.incremental,
        max_reject_rate=args.max_reject_rate,
        target_file_bytes=parse_size(args.target_file_size, "--target-file-size"),
        storage_options=storage_options,
    )


def ingest(args) -> int:
    """Run one ingest holding the dataset's lock; print its report; exit 1 if it committed
    nothing because of rejects, or if another run holds the lock."""
    from catalog import LockHeld
    from runners.locking import print_locked, writing
    from runners.options import parse_storage_options

    storage_options = parse_storage_options(args.storage_options)
    try:
        with writing(args, f"ingest {args.ingest_kind}", storage_options) as run_id:
            return _ingest(args, storage_options, run_id)
    except LockHeld as exc:
        return print_locked(exc)


def _ingest(args, storage_options, run_id: str) -> int:
    from runners.commands.reporting import run_and_report

    if args.ingest_kind == "posts":
        from pipelines.ingest_posts import run

        config = _posts_config(args, storage_options)
    else:
        from pipelines.ingest_fleet import run

        config = _fleet_config(args, storage_options)
    return run_and_report(f"ingesting {args.ingest_kind}", args, run, config, run_id)
