"""``shardsmith ingest posts|fleet``: raw sources into a dataset version."""

from __future__ import annotations


def _posts_config(args, storage_options):
    from pipelines.ingest_posts import IngestPostsConfig
    from runners.units import parse_size

    return IngestPostsConfig(
        sources=tuple(args.sources),
        dataset=args.dataset,
        dedup_text=args.dedup_text,
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
        incremental=args.incremental,
        max_reject_rate=args.max_reject_rate,
        target_file_bytes=parse_size(args.target_file_size, "--target-file-size"),
        storage_options=storage_options,
    )


def ingest(args) -> int:
    """Run one ingest; print its report; exit 1 if it committed nothing because of rejects."""
    from runners.console import print_report, progress
    from runners.execute import RunFailed
    from runners.options import beam_options, parse_storage_options

    storage_options = parse_storage_options(args.storage_options)
    if args.ingest_kind == "posts":
        from pipelines.ingest_posts import run

        config = _posts_config(args, storage_options)
    else:
        from pipelines.ingest_fleet import run

        config = _fleet_config(args, storage_options)
    options = beam_options(args.runner, args.workers, args.passthrough_args)
    workers = options.get_all_options()["direct_num_workers"]
    label = f"ingesting {args.ingest_kind} ({args.runner} runner, {workers} workers)"
    try:
        with progress(label, None):
            report = run(config, options)
    except RunFailed as failed:
        print_report(failed.report)
        return 1
    if report.status == "nothing-new" and not report.records_in:
        print(report.message)
    else:
        print_report(report)
    return 0
