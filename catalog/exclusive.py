"""Create-if-absent: the one primitive the commit protocol needs from a store.

What each store guarantees:

* local disk (``file``): the manifest is written to a temporary name, fsynced, then hard-linked
  to its final name. ``link(2)`` fails if the name exists, and the file appears complete or not
  at all, so a reader never sees a half-written manifest.
* ``memory://``: in-process only; a process-wide lock makes check-and-create atomic.
* S3 (``s3://`` through s3fs): ``open(path, "xb")`` becomes a PUT with ``If-None-Match: *``.
  S3 (since 2024) and moto's server reject the second creator with 412, which s3fs raises as
  ``FileExistsError``. The manifest is sent as a single PUT, so it is visible complete or not at
  all, and S3's strong read-after-write consistency makes it visible to every reader at once.
  S3-compatible stores that ignore ``If-None-Match`` would let two committers both win: use them
  with one writer at a time.
* Other stores: not verified, so commits are refused rather than risked.
"""

from __future__ import annotations

import os
import threading
import uuid

from fsspec import AbstractFileSystem

from catalog.storage import is_local, join, protocol

__all__ = ["UnsupportedStoreError", "create_exclusive"]

_MEMORY_LOCK = threading.Lock()
_CONDITIONAL_PUT = ("s3", "s3a")
_MiB = 1 << 20


class UnsupportedStoreError(RuntimeError):
    """The store cannot create a file only-if-absent, so committing there could lose a version."""


def create_exclusive(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    """Create ``path`` holding ``data``; raise ``FileExistsError`` if it exists already."""
    proto = protocol(fs)
    if is_local(fs):
        _link_exclusive(path, data)
    elif proto == "memory":
        with _MEMORY_LOCK:
            if fs.exists(path):
                raise FileExistsError(path)
            fs.pipe_file(path, data)
    elif proto in _CONDITIONAL_PUT:
        # One block larger than the payload: a single conditional PUT, never a multipart upload.
        with fs.open(path, "xb", block_size=max(5 * _MiB, len(data) + _MiB)) as f:
            f.write(data)
    else:
        raise UnsupportedStoreError(
            f"cannot commit to {proto}:// datasets: create-if-absent is not verified on this store "
            f"(supported: local paths, memory://, s3://)"
        )


def _link_exclusive(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    tmp = join(directory, f".tmp-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
