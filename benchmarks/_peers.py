"""Running a peer (datatrove) in its own virtualenv, made by ``make peers``, for the benchmarks
that compare with it. Not a benchmark (``make bench`` runs ``benchmarks/[!_]*.py``)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["DATATROVE", "run_datatrove"]

DATATROVE = Path(__file__).resolve().parents[1] / ".peers" / "datatrove" / "bin" / "python"
_SCRIPTS = Path(__file__).resolve().parent / "peers"


def run_datatrove(
    script: str, args: list[str], out: Path, workers: int, *, peer: Path = DATATROVE
) -> float | None:
    """Run ``benchmarks/peers/<script>`` with ``args`` and ``--workers`` under datatrove's
    python, into a fresh ``out``: its wall seconds, or None (with a printed note) when the peer
    is not installed or fails."""
    if not peer.exists():
        print(f"datatrove: skipped ({peer} not found; `make peers` installs it)")
        return None
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [str(peer), str(_SCRIPTS / script), *args, "--workers", str(workers)],
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        print(f"datatrove: failed, skipped\n{done.stderr.decode()[-1500:]}")
        return None
    return seconds
