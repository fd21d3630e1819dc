"""``shardsmith ingest``: raw sources into a dataset version."""

from __future__ import annotations


def ingest(args) -> int:
    from pipelines.ingest_posts import IngestPostsConfig, run
    from runners.console import print_report, progress
    from runners.execute import RunFailed
    from runners.options import beam_options, parse_storage_options
    from runners.units import parse_size

    config = IngestPostsConfig(
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
        storage_options=parse_storage_options(args.storage_options),
    )
    options = beam_options(args.runner, args.workers, args.passthrough_args)
    workers = options.get_all_options()["direct_num_workers"]
    try:
        with progress(f"ingesting posts ({args.runner} runner, {workers} workers)", None):
            report = run(config, options)
    except RunFailed as failed:
        print_report(failed.report)
        return 1
    print_report(report)
    return 0
