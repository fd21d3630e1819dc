"""Runner selection and options, the CLI, running a pipeline to its report, and scheduling it.

Names are re-exported lazily (PEP 562), so that ``shardsmith --help`` does not import Beam.
"""

from importlib import import_module

_EXPORTS = {
    "main": "runners.cli",
    "UserError": "runners.errors",
    "parse_duration": "runners.units",
    "parse_size": "runners.units",
    "RUNNERS": "runners.options",
    "add_runner_arguments": "runners.options",
    "beam_options": "runners.options",
    "parse_storage_options": "runners.options",
    "ProgressDisplay": "runners.progress",
    "ProgressPlan": "runners.progress",
    "showing": "runners.progress",
    "RunFailed": "runners.execute",
    "run_outcome": "runners.execute",
    "run_pipeline": "runners.execute",
    "LOCKED_PREFIX": "runners.locking",
    "print_locked": "runners.locking",
    "writing": "runners.locking",
    "SCHEDULABLE": "runners.schedule",
    "Job": "runners.schedule",
    "TickLine": "runners.schedule",
    "next_slot": "runners.schedule",
    "parse_job": "runners.schedule",
    "tick_argv": "runners.schedule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'runners' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
