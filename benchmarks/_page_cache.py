"""``warm``: read input files once so that the runs a benchmark compares all read them from the
page cache. Not a benchmark (``make bench`` runs ``benchmarks/[!_]*.py``).

Why: on the reference machine the page cache is sometimes emptied between runs (seen: 5 GiB of
cached input gone within minutes). Reading 5.8 GiB cold costs ~11 s of system time, which fell
on whichever run came first -- the orjson anchor took 11.9 s and 14.1 s instead of ~9 s, and a
cost pair's run without ``--dedup-near`` 30.9 s instead of ~24.5 s."""

from __future__ import annotations

import time
from collections.abc import Iterable

__all__ = ["warm"]


def warm(files: Iterable[str]) -> float:
    """Read every file of ``files`` to its end; the seconds it took (~1 s for 5.8 GiB already
    cached, ~11 s cold)."""
    start = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.read(16 << 20):
                pass
    return time.perf_counter() - start
