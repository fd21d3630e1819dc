"""The read side and the dataset contract: open a dataset at a version, commit, lock, collect
garbage."""

from catalog.dataset import (
    CommitConflict,
    CommitRequest,
    Dataset,
    DatasetError,
    config_hash,
    new_run_id,
    utc_now,
)
from catalog.exclusive import UnsupportedStoreError, create_exclusive
from catalog.gc import GcResult, collect_garbage
from catalog.lock import DatasetLock, LockHeld, LockHolder
from catalog.parquet import read_parquet
from catalog.storage import open_url, redact_url
from catalog.token_reader import TokenReader

__all__ = [
    "CommitConflict",
    "CommitRequest",
    "Dataset",
    "DatasetError",
    "DatasetLock",
    "GcResult",
    "LockHeld",
    "LockHolder",
    "TokenReader",
    "UnsupportedStoreError",
    "collect_garbage",
    "config_hash",
    "create_exclusive",
    "new_run_id",
    "open_url",
    "read_parquet",
    "redact_url",
    "utc_now",
]
