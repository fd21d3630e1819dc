"""glibc malloc settings for a run's processes: a peak memory that grows less with the input.

A run's processes (the driver, which is also Beam's runner, and the worker processes it starts)
are many-threaded (gRPC) and free much of what they allocate (parsed lines, data-plane
messages). With glibc's defaults, each thread that allocates gets an arena of its own (up to
8 per core) and the threshold above which a block is mapped on its own rises with the largest
block freed (up to 32 MiB), so freed memory stays in fragmented heaps: at 1 M lines the runner
process held ~70 MB more than at 200 k, the workers ~30 MB more each (peak of the whole run
+18%). Two arenas and a fixed 4 MiB mapping threshold (larger blocks go back to the OS when
freed) brought that to +12.5% at the same speed (benchmarks/ingest_posts.py). A 1-2 MiB
threshold gave +8-11% but cost ~4% of an ingest's wall time and ~8% of a ``--dedup-near`` one
(page faults of re-mapped numpy arrays and read blocks). Arrow's buffers do not use malloc.

The heap is trimmed only once 8 MiB are free at its top, not glibc's 128 KiB: a source is read
in 1 MiB blocks, and each block freed at the top of the heap was handed back to the OS and
faulted in again for the next one (1.3 M page faults at 1 M lines, 0.5 M with this; ~2 s less
system time of ~50 s CPU, same peak).

Workers get the settings through the environment (glibc reads ``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` when a process starts); this process
through ``mallopt``. Values a user set in the environment are kept. Elsewhere than glibc,
nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["SETTINGS", "tune_malloc"]

# (environment variable, mallopt parameter number, value)
SETTINGS = (
    ("MALLOC_ARENA_MAX", -8, 2),  # M_ARENA_MAX
    ("MALLOC_MMAP_THRESHOLD_", -3, 4 << 20),  # M_MMAP_THRESHOLD: fixed, so not dynamic
    ("MALLOC_TRIM_THRESHOLD_", -1, 8 << 20),  # M_TRIM_THRESHOLD
)


def tune_malloc() -> bool:
    """Apply ``SETTINGS`` to this process and to the processes it starts from now on; False
    when this is not glibc (or mallopt refused), True otherwise."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    ok = True
    for name, param, value in SETTINGS:
        chosen = os.environ.setdefault(name, str(value))
        try:
            ok &= libc.mallopt(param, int(chosen)) == 1
        except ValueError:
            ok = False  # not a number: glibc ignores it in the workers too
    return ok
