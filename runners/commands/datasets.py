"""``shardsmith history`` and ``shardsmith gc``: looking after a dataset."""

from __future__ import annotations

import json


def history(args) -> None:
    from catalog import Dataset
    from runners.console import human_bytes, print_table
    from runners.options import parse_storage_options

    ds = Dataset.open(args.dataset, storage_options=parse_storage_options(args.storage_options))
    record = ds.expiry()
    # Versions a gc expired but was killed before removing are listed as expired, not live.
    through = record.through if record else 0
    manifests = [ds.manifest(v) for v in ds.versions() if v > through]
    if args.json:
        for m in manifests:
            print(
                json.dumps(
                    {
                        "version": m.version,
                        "operation": m.operation,
                        "run_id": m.run_id,
                        "created_at": m.created_at,
                        "rows": m.rows,
                        "files": len(m.files),
                        "bytes": m.bytes,
                        "report": m.report,
                    },
                    ensure_ascii=False,
                )
            )
        return
    rows = [
        (
            m.version,
            m.created_at,
            m.operation,
            m.run_id,
            f"{m.rows:,}",
            len(m.files),
            human_bytes(m.bytes),
            f"{m.report.get('records_written', 0):,}",
            f"{m.report.get('records_rejected', 0):,}",
        )
        for m in manifests
    ]
    print_table(
        f"{ds.kind} dataset {ds.url}",
        ("version", "created (UTC)", "op", "run", "rows", "files", "size", "+rows", "rejects"),
        rows,
    )
    if not manifests:
        print("no versions committed yet")
    if record is not None:
        live = f"the oldest live version is {manifests[0].version}" if manifests else "none live"
        print(
            f"{record.through} older versions expired by gc (1..{record.through}, last at "
            f"{record.created_at}); {live}"
        )


def gc(args) -> int:
    """Finish an interrupted expiry, expire versions past --keep-versions/--keep-for, remove
    orphans; all under the dataset's lock (a dry run takes none and changes nothing)."""
    from catalog import Dataset, LockHeld
    from runners.locking import print_locked, writing
    from runners.options import parse_storage_options
    from runners.units import parse_duration

    min_age = parse_duration(args.min_age, "--min-age")
    policy = _policy(args)
    storage_options = parse_storage_options(args.storage_options)
    ds = Dataset.open(args.dataset, storage_options=storage_options)
    if args.dry_run:
        _gc(ds, policy, min_age, args, run_id="")
        return 0
    try:
        with writing(args, "gc", storage_options) as run_id:
            _gc(ds, policy, min_age, args, run_id)
    except LockHeld as exc:
        return print_locked(exc)
    return 0


def _policy(args):
    from catalog import RetentionPolicy
    from runners.errors import UserError
    from runners.units import parse_duration

    if args.keep_versions is None and args.keep_for is None:
        return None
    if args.keep_versions is not None and args.keep_versions < 1:
        raise UserError(
            f"--keep-versions {args.keep_versions}: expected 1 or more (the latest version is "
            "always kept)"
        )
    keep_for = parse_duration(args.keep_for, "--keep-for") if args.keep_for is not None else None
    return RetentionPolicy(keep_versions=args.keep_versions, keep_for=keep_for)


def _rules(args) -> str:
    rules = []
    if args.keep_versions is not None:
        rules.append(f"--keep-versions {args.keep_versions}")
    if args.keep_for is not None:
        rules.append(f"--keep-for {args.keep_for}")
    return " ".join(rules)


def _span(versions) -> str:
    return (
        f"version {versions[0]}"
        if len(versions) == 1
        else f"versions {versions[0]}..{versions[-1]}"
    )


def _gc(ds, policy, min_age, args, run_id: str) -> None:
    from catalog import collect_garbage, expire_versions
    from runners.console import human_bytes

    dry = args.dry_run
    verb = "would remove" if dry else "removed"
    expired = expire_versions(ds, policy, dry_run=dry, run_id=run_id)
    if expired.finished:
        print(
            f"{'would finish' if dry else 'finished'} expiring {_span(expired.finished)} "
            "(an earlier gc was interrupted)"
        )
    if policy is not None:
        latest = ds.latest_version()
        kept = f"kept {_span([expired.oldest_live, latest])}" if latest else "no versions"
        if expired.expired:
            print(
                f"{'would expire' if dry else 'expired'} {_span(expired.expired)} "
                f"({len(expired.expired)} versions); {kept} ({_rules(args)})"
            )
        else:
            print(f"nothing to expire: {kept} ({_rules(args)})")
    for path in expired.removed:
        print(f"{verb} {path}")
    if policy is not None or expired.removed:
        print(
            f"{verb} {len(expired.removed)} files only expired versions listed "
            f"({human_bytes(expired.removed_bytes)})"
        )
    result = collect_garbage(ds, min_age=min_age, dry_run=dry)
    for path in result.removed:
        print(f"{verb} {path}")
    print(f"{verb} {len(result.removed)} orphan files ({human_bytes(result.removed_bytes)})")
    if result.kept_young:
        print(
            f"kept {len(result.kept_young)} orphan files younger than {args.min_age} "
            f"(a run may still be writing them; --min-age 0 removes them)"
        )
