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
        # With a Python file object, Arrow's reader threads (pre_buffer, use_threads) leave
        # state that aborts the interpreter at exit while a table read that way is alive
        # ("terminate called without an active exception", pyarrow 25). Workers read whole
        # files in parallel anyway, so one thread per read costs little.
        return pq.read_table(
            f, columns=list(columns) if columns else None, pre_buffer=False, use_threads=False
        )
