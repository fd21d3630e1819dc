"""Runner selection: shardsmith's own runner flags, and every other flag passed through to Beam."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from runners.errors import UserError

__all__ = ["RUNNERS", "add_runner_arguments", "beam_options", "parse_storage_options"]

RUNNERS = ("local",)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--runner``, ``--workers`` and ``--storage-options`` to a pipeline command's parser."""
    group = parser.add_argument_group(
        "runner", "Any other --flag is passed unchanged to Beam's PipelineOptions."
    )
    group.add_argument(
        "--runner",
        choices=RUNNERS,
        default="local",
        help="where the pipeline runs: local = Beam's FnApiRunner, one worker process per core "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for --runner local (default: one per core)",
    )


def parse_storage_options(text: str | None) -> dict[str, Any]:
    """``--storage-options`` JSON (or ``@file.json``) -> dict for fsspec; ``{}`` when absent."""
    if not text:
        return {}
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                value = json.load(f)
        else:
            value = json.loads(text)
    except OSError as exc:
        raise UserError(f"--storage-options {text}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        # The text may hold credentials: name the flag, not the value.
        raise UserError(f"--storage-options: not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(value, dict):
        raise UserError("--storage-options: expected a JSON object such as '{\"anon\": true}'")
    return value


def beam_options(runner: str, workers: int | None, passthrough: Sequence[str]):
    """The Beam ``PipelineOptions`` for ``--runner`` plus the flags shardsmith does not know.

    ``local`` is Beam's FnApiRunner in multi-processing mode with one worker per core; any
    pass-through flag (``--direct_running_mode=in_memory``, ...) overrides these defaults.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    if runner != "local":
        raise UserError(f"--runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: expected a positive number of processes")
    defaults = [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers or os.cpu_count() or 1}",
        # Worker processes log every bundle at INFO; the run report says what matters.
        "--default_sdk_harness_log_level=WARNING",
    ]
    args = defaults + list(passthrough)
    options = PipelineOptions(args)
    unknown = _unknown_flags(options, passthrough)
    if unknown:
        raise UserError(f"unknown option {unknown[0]}: not a shardsmith or Beam flag (see --help)")
    return options


def _unknown_flags(options, passthrough: Sequence[str]) -> list[str]:
    # Beam accepts unknown flags silently; a typo (--direct_num_worker=4) must not be ignored.
    known = set(options.get_all_options(retain_unknown_options=False))
    unknown = []
    for arg in passthrough:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            if name not in known:
                unknown.append(arg.split("=", 1)[0])
    return unknown
