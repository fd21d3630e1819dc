"""``shardsmith history`` and ``shardsmith gc``: looking after a dataset."""

from __future__ import annotations

import json


def history(args) -> None:
    from catalog import Dataset
    from runners.console import human_bytes, print_table
    from runners.options import parse_storage_options

    ds = Dataset.open(args.dataset, storage_options=parse_storage_options(args.storage_options))
    manifests = [ds.manifest(v) for v in ds.versions()]
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


def gc(args) -> None:
    from catalog import Dataset, collect_garbage
    from runners.console import human_bytes
    from runners.options import parse_storage_options
    from runners.units import parse_duration

    min_age = parse_duration(args.min_age, "--min-age")
    ds = Dataset.open(args.dataset, storage_options=parse_storage_options(args.storage_options))
    result = collect_garbage(ds, min_age=min_age, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in result.removed:
        print(f"{verb} {path}")
    print(f"{verb} {len(result.removed)} orphan files ({human_bytes(result.removed_bytes)})")
    if result.kept_young:
        print(
            f"kept {len(result.kept_young)} orphan files younger than {args.min_age} "
            f"(a run may still be writing them; --min-age 0 removes them)"
        )
