"""A Beam plugin for the worker processes of ``--runner local``: their exit skips the last
garbage collection.

A worker process ends with the run, and the runner waits for it to end. Python's last
collection at exit walks every object the worker holds (Beam's, pyarrow's, the parsers'
caches): 0.15-0.35 s after an ingest of 1 M lines, in every worker, all of it spent after the
commit. Frozen objects (``gc.freeze``) are skipped, as the CLI's own process does (see
``runners.cli.main``). Beam's SDK harness imports this module at its start
(``--beam_plugins``, ``runners.options.local_flags``).
"""

from __future__ import annotations

import atexit
import gc
import sys


def _freeze() -> None:
    # Not after DuckDB was used: its bindings print every instance still alive at exit as a
    # leak, and frozen objects are never collected (as in runners.cli.main).
    if "duckdb" not in sys.modules:
        gc.freeze()


atexit.register(_freeze)
