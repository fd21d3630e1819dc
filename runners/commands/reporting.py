"""Running one pipeline from a command: the runner's options, progress, and the report."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

from runners.progress import ProgressDisplay, showing

log = logging.getLogger(__name__)


def progress_display(args) -> ProgressDisplay:
    """The ``ProgressDisplay`` of ``--progress`` and ``--stall-warning`` (seconds, parsed)."""
    return ProgressDisplay(mode=args.progress, stall_s=args.stall_warning)


def run_and_report(what: str, args, run: Callable[..., Any], config, run_id: str) -> int:
    """Run ``run(config, options, run_id=...)`` on the runner the flags chose, showing its
    progress as ``--progress`` / ``--stall-warning`` say, and print its report; 1 when the
    run committed nothing because of rejects. (``run`` sizes the runner once it has planned:
    a small input runs in this process.)"""
    from runners.console import print_report
    from runners.execute import RunFailed
    from runners.options import describe_runner, runner_options

    options = runner_options(args)
    display = progress_display(args)
    if getattr(args, "own_process", False):
        # What is loaded by now (Beam, pyarrow, the pipeline's modules) lives until exit:
        # the collections the run triggers need not walk it again and again.
        gc.freeze()
    try:
        with showing(display):
            log.info("%s (%s)", what, describe_runner(options))
            report = run(config, options, run_id=run_id)
    except RunFailed as failed:
        print_report(failed.report)
        return 1
    if report.status == "nothing-new" and not report.records_in:
        print(report.message)
    else:
        print_report(report)
    return 0
