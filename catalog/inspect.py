"""What a dataset version holds, as plain data: files, rows, schema, partitions, nulls, and the
statistics that matter for its kind (computed with DuckDB over the version's view)."""

from __future__ import annotations

from typing import Any

import duckdb

from catalog.sql import ViewSpec
from catalog.tombstones import tombstone_counts, tombstone_view

__all__ = ["summarize"]


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rel = con.sql(sql)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    rows = _rows(con, sql)
    return rows[0] if rows else {}


def _history(spec: ViewSpec, expired: int) -> list[dict[str, Any]]:
    out = []
    for v in spec.ds.versions():
        if v > spec.version:
            break
        if v <= expired:
            continue  # expired by a gc that was killed before removing its manifest
        m = spec.ds.manifest(v)
        report = m.report or {}
        out.append(
            {
                "version": v,
                "operation": m.operation,
                "created_at": m.created_at,
                "files": len(m.files),
                "rows": sum(f.rows for f in m.files),
                "records_written": report.get("records_written"),
                "records_rejected": report.get("records_rejected"),
            }
        )
    return out


def _expired(spec: ViewSpec) -> int:
    # Versions 1..through were expired by gc retention (0: none ever was).
    record = spec.ds.expiry()
    return record.through if record else 0


def _nulls(con, view: str, columns: list[str]) -> dict[str, int]:
    if not columns:
        return {}
    parts = ", ".join(f'count(*) - count("{c}") AS "{c}"' for c in columns)
    return {k: int(v) for k, v in _one(con, f'SELECT {parts} FROM "{view}"').items()}


def _posts(con, v: str) -> dict[str, Any]:
    return {
        "time_range": _one(
            con, f'SELECT min(created_at) AS first, max(created_at) AS last FROM "{v}"'
        ),
        "languages": _rows(
            con,
            f'SELECT lang, count(*) AS posts FROM "{v}" GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 10',
        ),
        "hashtags": _rows(
            con,
            f"SELECT lower(h) AS hashtag, count(*) AS posts FROM (SELECT unnest(hashtags) AS h "
            f'FROM "{v}") GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 10',
        ),
        "authors": _rows(
            con,
            f'SELECT author_username AS author, count(*) AS posts FROM "{v}" GROUP BY ALL '
            f"ORDER BY 2 DESC, 1 LIMIT 10",
        ),
        "text_chars": _one(
            con,
            f"SELECT quantile_cont(length(text), [0.5, 0.9, 0.99]) AS p50_p90_p99, "
            f'max(length(text)) AS max FROM "{v}"',
        ),
    }


def _clips(con, v: str, spec: ViewSpec) -> dict[str, Any]:
    q = "quality"
    quality = _one(
        con,
        "SELECT "
        + ", ".join(
            f"quantile_cont({q}.{m}, [0.1, 0.5, 0.9]) AS {m}"
            for m in ("blur_score", "black_fraction", "frozen_fraction", "camera_skew_ms")
        )
        + f', sum({q}.dropped_frames) AS dropped_frames FROM "{v}"',
    )
    rejects: dict[str, int] = {}
    # One listing of the versions, not one per version (each is a directory listing / S3 call).
    for version in (v for v in spec.ds.versions() if v <= spec.version):
        report = spec.ds.manifest(version).report or {}
        for reason, n in report.get("rejects_by_reason", {}).items():
            rejects[reason] = rejects.get(reason, 0) + n
    return {
        "footage": _one(
            con,
            f"SELECT count(DISTINCT vehicle_id) AS vehicles, count(DISTINCT session_id) AS "
            f"sessions, round(sum(duration_s) / 3600, 3) AS hours, min(start_time) AS first, "
            f'max(start_time) AS last FROM "{v}"',
        ),
        "cameras": _rows(
            con,
            f"SELECT c.camera, count(*) AS windows, sum(len(c.frames)) AS frames, "
            f"any_value(c.width || 'x' || c.height) AS size FROM (SELECT unnest(cameras) AS c FROM \"{v}\") "
            f"GROUP BY ALL ORDER BY 1",
        ),
        "events": _rows(
            con,
            f'SELECT event.reason AS reason, count(*) AS windows FROM "{v}" '
            f"WHERE event.reason IS NOT NULL GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 10",
        ),
        "quality_p10_p50_p90": quality,
        "rejects_by_reason": dict(sorted(rejects.items())),
    }


def _tokens(con, v: str, spec: ViewSpec) -> dict[str, Any]:
    props = spec.ds.manifest(spec.version).properties
    tokenizer = props.get("tokenizer") or {}
    return {
        "totals": _one(
            con,
            f"SELECT count(*) AS examples, sum(len(input_ids)) AS tokens, "
            f"count(*) FILTER (WHERE len(input_ids) < {int(props.get('seq_len') or 0)}) AS short, "
            f'sum(len(media)) AS media_pieces FROM "{v}"',
        ),
        "document_tokens": _one(
            con,
            f"SELECT count(*) AS documents, quantile_cont(n, [0.5, 0.9, 0.99]) AS p50_p90_p99, "
            f"max(n) AS max FROM (SELECT s.dataset, s.id, sum(s.length) AS n FROM "
            f'(SELECT unnest(sources) AS s FROM "{v}") GROUP BY ALL)',
        ),
        "shards": _balance([f.rows for f in spec.ds.files(spec.version)]),
        "tokenizer": {k: tokenizer.get(k) for k in ("name", "vocab_size", "sha256")},
        "seq_len": props.get("seq_len"),
        "pack": props.get("pack"),
        "seed": props.get("seed"),
        "inputs": props.get("inputs"),
    }


def _balance(rows: list[int]) -> dict[str, Any]:
    # Examples per file: a shard far bigger than the others is a straggler for readers.
    ordered = sorted(rows)
    mean = sum(rows) / len(rows) if rows else 0
    return {
        "files": len(rows),
        "examples_min": ordered[0] if rows else 0,
        "examples_median": ordered[len(rows) // 2] if rows else 0,
        "examples_max": ordered[-1] if rows else 0,
        "max_over_mean": round(ordered[-1] / mean, 3) if mean else None,
    }


def summarize(con: duckdb.DuckDBPyConnection, spec: ViewSpec) -> dict[str, Any]:
    """Everything ``shardsmith inspect`` shows about ``spec`` (a view of ``con``), as JSON-able
    data."""
    v = spec.name
    manifest = spec.ds.manifest(spec.version) if spec.version else None
    expired = _expired(spec)
    files = list(manifest.files) if manifest else []
    schema = spec.ds.info.schema
    out: dict[str, Any] = {
        "dataset": spec.ds.url,
        "kind": spec.ds.kind,
        "version": spec.version,
        "history": _history(spec, expired) if spec.version else [],
        "expired_versions": expired,
        "files": len(files),
        "rows": sum(f.rows for f in files),
        "bytes": sum(f.bytes for f in files),
        "schema": [f"{f.name}: {f.type}" for f in schema],
        # Columns the kind gained after this dataset was created: null in its older files.
        "columns_added_since_created": list(spec.ds.missing_columns),
    }
    if spec.ds.kind == "posts" and manifest is not None and manifest.tombstones:
        # Compliance removals the dataset holds, whether or not any row is left.
        out["posts"] = {"tombstones": tombstone_counts(con, tombstone_view(v))}
    if not files:
        return out
    if spec.ds.spec.partition_by:
        out["partitions"] = _rows(
            con, f'SELECT dt, count(*) AS rows FROM "{v}" GROUP BY ALL ORDER BY 1'
        )
    out["nulls"] = _nulls(con, v, [f.name for f in schema])
    kind = spec.ds.kind
    out[kind] = out.get(kind, {}) | (
        _posts(con, v)
        if kind == "posts"
        else _clips(con, v, spec)
        if kind == "clips"
        else _tokens(con, v, spec)
    )
    return out
