"""``shardsmith inspect``: what a dataset version holds, on one screen (or as JSON)."""

from __future__ import annotations

import json
from typing import Any

from runners.errors import UserError


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return " / ".join(_fmt(v) for v in value)
    return "-" if value is None else str(value)


def _print_summary(summary: dict[str, Any]) -> None:
    from runners.console import human_bytes, print_table

    kind = summary["kind"]
    print(
        f"{summary['dataset']}: {kind}, version {summary['version']}, {summary['files']:,} files, "
        f"{summary['rows']:,} rows, {human_bytes(summary['bytes'])}"
    )
    history = summary["history"]
    if history:
        print_table(
            "versions",
            ("version", "operation", "created (UTC)", "files", "rows", "written", "rejected"),
            [[_fmt(h[k]) for k in h] for h in history],
        )
    if summary.get("expired_versions"):
        n = summary["expired_versions"]
        print(f"versions 1..{n} expired by gc ({n} versions); the history starts after them")
    rows = []
    for field in summary["schema"]:
        name, type_ = field.split(": ", 1)
        type_ = type_.replace("item: ", "")
        type_ = type_ if len(type_) <= 72 else type_[:69] + "..."
        rows.append((name, type_, _fmt(summary.get("nulls", {}).get(name))))
    print_table("schema", ("column", "type", "nulls"), rows)
    if summary.get("columns_added_since_created"):
        added = ", ".join(summary["columns_added_since_created"])
        print(f"columns added since the dataset was created (null in older files): {added}")
    if summary.get("partitions"):
        print_table(
            "rows per partition",
            ("dt", "rows"),
            [(str(p["dt"]), _fmt(p["rows"])) for p in summary["partitions"]],
        )
    for section, value in (summary.get(kind) or {}).items():
        title = section.replace("_", " ")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            print_table(title, list(value[0]), [[_fmt(v) for v in row.values()] for row in value])
        elif isinstance(value, dict) and value:
            print_table(title, ("", ""), [(k, _fmt(v)) for k, v in value.items()])
        elif value not in (None, [], {}):
            print(f"{title}: {_fmt(value)}")


def inspect(args) -> int:
    """Print the summary of one dataset version; draw the pictures asked for."""
    from catalog.inspect import summarize
    from catalog.sql import connect, view_specs
    from runners.options import parse_storage_options

    storage_options = parse_storage_options(args.storage_options)
    (spec,) = view_specs([args.dataset], version=args.version, storage_options=storage_options)
    con = connect(spec.ds, version=spec.version)
    try:
        summary = summarize(con, spec)
        if args.contact_sheet:
            _contact_sheet(con, spec, args.contact_sheet, args.clip)
        if args.histogram:
            _histogram(con, spec, args.histogram)
    finally:
        con.close()
    if args.json:
        print(json.dumps(summary, default=str, indent=1))
    else:
        _print_summary(summary)
    return 0


def _contact_sheet(con, spec, path: str, clip_ids: list[str] | None) -> None:
    from catalog.pictures import contact_sheet

    if spec.ds.kind != "clips":
        raise UserError(
            f"--contact-sheet: {spec.ds.url} is a {spec.ds.kind} dataset; expected clips"
        )
    view = f'"{spec.name}"'
    if clip_ids:
        rows = con.execute(
            f"SELECT * FROM {view} WHERE clip_id IN (SELECT unnest(?)) ORDER BY start_time, clip_id",
            [clip_ids],
        ).to_arrow_table()
        missing = sorted(set(clip_ids) - set(rows.column("clip_id").to_pylist()))
        if missing:
            raise UserError(f"--clip {missing[0]}: no such clip in version {spec.version}")
    else:
        rows = con.sql(
            f"SELECT * FROM {view} ORDER BY start_time, clip_id LIMIT 4"
        ).to_arrow_table()
    if not rows.num_rows:
        raise UserError(f"--contact-sheet: version {spec.version} has no clips")
    layout = contact_sheet(rows.to_pylist(), path)
    print(f"contact sheet: {path} ({layout.size[0]}x{layout.size[1]}, {len(layout.cells)} frames)")


_HISTOGRAMS = {
    "tokens": (
        "document length (tokens)",
        "SELECT sum(s.length) AS n FROM (SELECT unnest(sources) AS s FROM {v}) GROUP BY s.dataset, s.id",
    ),
    "posts": (
        "text length (characters)",
        "SELECT length(text) AS n FROM {v} WHERE text IS NOT NULL",
    ),
    "clips": ("blur score (variance of the Laplacian)", "SELECT quality.blur_score AS n FROM {v}"),
}


def _histogram(con, spec, path: str) -> None:
    from catalog.plots import PlotsUnavailable, histogram

    xlabel, sql = _HISTOGRAMS[spec.ds.kind]
    values = (
        con.sql(sql.format(v=f'"{spec.name}"')).to_arrow_table().column("n").drop_null().to_numpy()
    )
    if not len(values):
        raise UserError(f"--histogram: version {spec.version} has nothing to count")
    try:
        drawn = histogram(values, path, title=f"{spec.ds.url} v{spec.version}", xlabel=xlabel)
    except PlotsUnavailable as exc:
        raise UserError(f"--histogram: {exc}") from None
    scales = [f"log {axis}" for axis, log in (("x", drawn.log_x), ("y", drawn.log_y)) if log]
    scale = f", {' and '.join(scales)} scale" if scales else ""
    print(f"histogram: {path} ({len(values):,} values of {xlabel}{scale})")
