"""Reading a Parquet file from any fsspec filesystem."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

__all__ = ["read_parquet"]


def read_parquet(
    fs: AbstractFileSystem, path: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """The table at ``path`` on ``fs`` (only ``columns`` if given)."""
    with fs.open(path, "rb") as f:
        # pre_buffer issues reads from Arrow's IO threads against a Python file object; with
        # pyarrow 25 that leaves a thread that aborts the interpreter at exit
        # ("terminate called without an active exception"). Plain sequential reads are safe.
        return pq.read_table(f, columns=list(columns) if columns else None, pre_buffer=False)
