"""``read_ahead``: read the next few items in a thread while the caller works on this one."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["read_ahead"]

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(items: Iterable[T], read: Callable[[T], R], *, depth: int = 2) -> Iterator[R]:
    """``read(item)`` for each of ``items``, in order, with up to ``depth`` reads running ahead
    in one thread.

    Reading Arrow files and writing Parquet both release the GIL, so a writer that reads its
    input this way keeps two cores busy; memory holds at most ``depth`` read-ahead results. An
    error of ``read`` is raised where its result would have been yielded.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(read, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
