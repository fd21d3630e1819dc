"""The read side and the dataset contract: open a dataset at a version, commit, lock, collect
garbage, expire old versions."""

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
from catalog.expiry import ExpiryRecord
from catalog.gc import GcResult, collect_garbage
from catalog.lock import DatasetLock, LockHeld, LockHolder
from catalog.parquet import read_parquet
from catalog.retention import ExpireResult, RetentionPolicy, expire_versions
from catalog.storage import open_url, redact_url
from catalog.token_reader import TokenReader

__all__ = [
    "CommitConflict",
    "CommitRequest",
    "Dataset",
    "DatasetError",
    "DatasetLock",
    "ExpireResult",
    "ExpiryRecord",
    "GcResult",
    "LockHeld",
    "LockHolder",
    "RetentionPolicy",
    "TokenReader",
    "UnsupportedStoreError",
    "collect_garbage",
    "config_hash",
    "create_exclusive",
    "expire_versions",
    "new_run_id",
    "open_url",
    "read_parquet",
    "redact_url",
    "utc_now",
]
