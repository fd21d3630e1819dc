"""``prefetch``: read the next few items in background threads while the caller uses this one."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], read: Callable[[T], R], *, depth: int) -> Iterator[R]:
    """``read(item)`` for each of ``items``, in order, with the next ``depth`` reads running in
    ``depth`` threads while the caller works on the current result.

    Several reads run at once because on object storage a read is mostly waiting (a request's
    latency), and Parquet decoding releases the GIL. Memory holds at most ``depth`` results
    besides the one yielded last; ``depth=0`` reads each item when it is needed, in the
    caller's thread. An error of ``read`` is raised where its result would have been yielded.
    """
    if depth == 0:
        for item in items:
            yield read(item)
        return
    it = iter(items)
    with ThreadPoolExecutor(depth, thread_name_prefix="prefetch") as pool:
        pending: deque[Future] = deque(
            pool.submit(read, item) for item in itertools.islice(it, depth)
        )
        try:
            while pending:
                result = pending.popleft().result()
                # Keep depth reads going while the caller works on this one.
                pending.extend(pool.submit(read, item) for item in itertools.islice(it, 1))
                yield result
        finally:
            # Closed early (the caller stopped, or a read failed): do not start the rest.
            for future in pending:
                future.cancel()
