"""``shardsmith tokenize``: posts/clips versions into a shuffled, packed tokens version."""

from __future__ import annotations


def tokenize(args) -> int:
    """Run one tokenize holding the output dataset's lock and print its report (exit 1 if
    another run holds the lock)."""
    from catalog import LockHeld
    from runners.locking import print_locked, writing
    from runners.options import parse_storage_options

    storage_options = parse_storage_options(args.storage_options)
    try:
        with writing(args, "tokenize", storage_options) as run_id:
            return _tokenize(args, storage_options, run_id)
    except LockHeld as exc:
        return print_locked(exc)


def _tokenize(args, storage_options, run_id: str) -> int:
    from pipelines.tokenize import TokenizeConfig, run
    from runners.commands.reporting import run_and_report
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
        storage_options=storage_options,
    )
    return run_and_report("tokenizing", args, run, config, run_id)
