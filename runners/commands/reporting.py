"""Running one pipeline from a command: the runner's options, progress, and the report."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any


def run_and_report(what: str, args, run: Callable[..., Any], config, run_id: str) -> int:
    """Run ``run(config, options, run_id=...)`` on the runner the flags chose, with a progress
    line, and print its report; 1 when the run committed nothing because of rejects. (``run``
    sizes the runner once it has planned: a small input runs in this process.)"""
    from runners.console import print_report, progress
    from runners.execute import RunFailed
    from runners.options import describe_runner, runner_options

    options = runner_options(args)
    if getattr(args, "own_process", False):
        # What is loaded by now (Beam, pyarrow, the pipeline's modules) lives until exit:
        # the collections the run triggers need not walk it again and again.
        gc.freeze()
    try:
        with progress(f"{what} ({describe_runner(options)})", None):
            report = run(config, options, run_id=run_id)
    except RunFailed as failed:
        print_report(failed.report)
        return 1
    if report.status == "nothing-new" and not report.records_in:
        print(report.message)
    else:
        print_report(report)
    return 0
