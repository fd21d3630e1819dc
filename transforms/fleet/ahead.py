"""``decode_ahead``: each camera of a session works through the windows in a thread of its own.

Decoding, scaling (libswscale) and JPEG encoding release the GIL, so a session's cameras keep
every core busy even when the runner gives the whole session to one process. Each camera runs
at most ``depth`` windows ahead of the consumer, so memory stays bounded by a few windows
whatever the session's length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from transforms.fleet.camera import Camera, CameraPart, sample_window

__all__ = ["decode_ahead"]

_POLL_S = 0.1  # how often a blocked thread looks whether the consumer has gone


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def decode_ahead(
    cameras: Sequence[Camera],
    windows: Sequence[tuple[int, int, np.ndarray]],
    options,
    *,
    depth: int = 2,
) -> Iterator[list[CameraPart]]:
    """Yield, for each ``(ws, we, samples)`` of ``windows`` in order, every camera's
    ``CameraPart`` (in the order of ``cameras``).

    Each camera works in its own thread; closing the iterator early stops them before it
    returns, so the caller may then close the files.
    """
    if not windows:
        return
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in cameras]

    def put(q: queue.Queue, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work(cam: Camera, q: queue.Queue) -> None:
        try:
            for ws, we, samples in windows:
                if stop.is_set() or not put(q, sample_window(cam, ws, we, samples, options)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(q, _Failed(exc))

    threads = [
        threading.Thread(target=work, args=(c, q), name=f"camera-{c.name}", daemon=True)
        for c, q in zip(cameras, queues, strict=True)
    ]
    for t in threads:
        t.start()
    try:
        for _ in windows:
            parts = [q.get() for q in queues]
            for part in parts:
                if isinstance(part, _Failed):
                    raise part.exc
            yield parts
    finally:
        stop.set()
        for t in threads:
            t.join()
