"""The schema of ``rejects/`` files: records that could not be ingested, each with its reason."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa

__all__ = ["MAX_PAYLOAD_BYTES", "REJECTS_SCHEMA", "reject_table"]

MAX_PAYLOAD_BYTES = 64 * 1024

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string(), nullable=False),
        # Where in the source: "line 17", "byte 4096", "t=12.400s", "row 3".
        pa.field("locator", pa.string(), nullable=False),
        # A short, stable code (json_invalid, missing_field, decode_error, ...): what reports group by.
        pa.field("reason", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        # The raw input, truncated to MAX_PAYLOAD_BYTES, so a reject can be replayed or debugged.
        pa.field("payload", pa.binary()),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)


def reject_table(records: Iterable[Mapping[str, object]], run_id: str | None = None) -> pa.Table:
    """Build a rejects table from dicts with the columns of ``REJECTS_SCHEMA``.

    ``payload`` may be ``bytes`` or ``str`` and is truncated to 64 KiB; ``run_id`` fills records
    that have none (pipelines leave it to the writer, which knows the run).
    """
    cols: dict[str, list] = {name: [] for name in REJECTS_SCHEMA.names}
    for rec in records:
        payload = rec.get("payload")
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "surrogatepass")
        if payload is not None:
            payload = bytes(payload[:MAX_PAYLOAD_BYTES])
        cols["source_uri"].append(str(rec["source_uri"]))
        cols["locator"].append(str(rec["locator"]))
        cols["reason"].append(str(rec["reason"]))
        cols["message"].append(str(rec.get("message") or rec["reason"]))
        cols["payload"].append(payload)
        cols["run_id"].append(str(rec.get("run_id") or run_id or ""))
    return pa.table(cols, schema=REJECTS_SCHEMA)
