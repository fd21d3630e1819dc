"""``PeakRss``: the peak of the summed RSS of a process and its descendants (for benchmarks that
run the CLI, whose workers are processes of their own). Not a benchmark (``make bench`` runs
``benchmarks/[!_]*.py``)."""

from __future__ import annotations

import contextlib
import threading

import psutil

__all__ = ["PeakRss"]


class PeakRss:
    """Samples the summed RSS of process ``pid`` and its descendants every 0.1 s until
    ``stop()``, which returns the peak in bytes."""

    def __init__(self, pid: int):
        self._proc = psutil.Process(pid)
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.1):
            with contextlib.suppress(psutil.Error):
                total = 0
                for p in [self._proc, *self._proc.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak
