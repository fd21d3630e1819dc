"""``shardsmith tokenize``: posts/clips versions into a shuffled, packed tokens version."""

from __future__ import annotations


def tokenize(args) -> int:
    """Run one tokenize and print its report."""
    from pipelines.tokenize import TokenizeConfig, run
    from runners.console import print_report, progress
    from runners.options import beam_options, parse_storage_options
    from runners.units import parse_size

    config = TokenizeConfig(
        inputs=tuple(args.inputs),
        dataset=args.dataset,
        tokenizer=args.tokenizer,
        seq_len=args.seq_len,
        shards=args.shards,
        seed=args.seed,
        pack=args.pack,
        threads=args.threads,
        patch=args.patch,
        version=args.input_version,
        incremental=args.incremental,
        target_file_bytes=parse_size(args.target_file_size, "--target-file-size"),
        storage_options=parse_storage_options(args.storage_options),
    )
    options = beam_options(args.runner, args.workers, args.passthrough_args)
    workers = options.get_all_options()["direct_num_workers"]
    with progress(f"tokenizing ({args.runner} runner, {workers} workers)", None):
        report = run(config, options)
    if report.status == "nothing-new" and not report.records_in:
        print(report.message)
    else:
        print_report(report)
    return 0
