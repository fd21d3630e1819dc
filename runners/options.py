"""Runner selection: shardsmith's own runner flags, and every other flag passed through to Beam."""

from __future__ import annotations

import argparse
import json
import os
import weakref
from collections.abc import Sequence
from typing import Any

from runners.errors import UserError

__all__ = [
    "RUNNERS",
    "SMALL_INPUT_BYTES",
    "add_runner_arguments",
    "beam_options",
    "describe_runner",
    "local_flags",
    "local_workers",
    "parse_storage_options",
    "runner_options",
    "sized_for_input",
]

RUNNERS = ("local", "dask", "portable", "dataflow", "flink", "spark")
_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_BEAM_RUNNERS = {"dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner"}
# Worker processes log every bundle at INFO; the run report says what matters.
_QUIET = "--default_sdk_harness_log_level=WARNING"
# Worker processes end without walking their heap (runners.worker_exit).
_WORKER_EXIT = "--beam_plugins=runners.worker_exit"

# Below this much input, ``--runner local`` runs in this process: starting one worker process
# per core costs ~1.5 s of CPU each (every worker imports Beam), more than parallelism saves
# on what a single core reads in a second or two.
SMALL_INPUT_BYTES = 64 << 20

# Options that ``--runner local`` may still size by input: the pass-through flags they were
# built from, by options object (no --workers and no --direct_* flag was given).
_SIZED_BY_INPUT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--runner``, ``--workers`` and ``--storage-options`` to a pipeline command's parser."""
    group = parser.add_argument_group(
        "runner", "Any other --flag is passed unchanged to Beam's PipelineOptions."
    )
    group.add_argument(
        "--runner",
        choices=RUNNERS,
        default="local",
        help="where the pipeline runs: local = Beam's FnApiRunner, one worker process per core; "
        "dask = Beam's DaskRunner on a Dask cluster; portable = any Beam job server (Flink, "
        "Spark, Beam's own job service); dataflow, flink, spark = Beam's runners for those "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for --runner local (default: one per core)",
    )
    group.add_argument(
        "--dask-address",
        metavar="tcp://HOST:PORT",
        help="--runner dask: the Dask scheduler (default: a new local Dask cluster)",
    )
    group.add_argument(
        "--job-endpoint",
        metavar="HOST:PORT",
        help="--runner portable: the Beam job server (Flink/Spark job server, or Beam's "
        "local_job_service_main)",
    )
    group.add_argument(
        "--worker-pool",
        metavar="HOST:PORT",
        help="--runner portable: run the Python workers in this external worker pool "
        "(apache_beam.runners.worker.worker_pool_main) instead of Beam's default Docker image",
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


def runner_options(args: argparse.Namespace):
    """``beam_options`` from a pipeline command's parsed arguments."""
    return beam_options(
        args.runner,
        args.workers,
        args.passthrough_args,
        dask_address=getattr(args, "dask_address", None),
        job_endpoint=getattr(args, "job_endpoint", None),
        worker_pool=getattr(args, "worker_pool", None),
    )


def local_flags(
    input_bytes: int | None,
    *,
    workers: int | None = None,
    cores: int | None = None,
    threshold: int = SMALL_INPUT_BYTES,
) -> list[str]:
    """The FnApiRunner flags of ``--runner local`` for an input of ``input_bytes``.

    ``workers`` given: that many worker processes, whatever the size. Otherwise an input
    known to be smaller than ``threshold`` bytes runs in this process (one worker, no worker
    processes to start); a larger or unknown (``None``) one on one worker process per core
    (``cores``, default ``os.cpu_count()``).

    >>> local_flags(100)
    ['--direct_running_mode=in_memory', '--direct_num_workers=1']
    """
    if workers is None and input_bytes is not None and input_bytes < threshold:
        return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    return [
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers or cores or os.cpu_count() or 1}",
        _WORKER_EXIT,
    ]


def _runner_flags(
    runner: str,
    workers: int | None,
    dask_address: str | None,
    job_endpoint: str | None,
    worker_pool: str | None,
) -> list[str]:
    if runner not in RUNNERS:
        raise UserError(f"--runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    if workers is not None and (runner != "local" or workers < 1):
        raise UserError(
            f"--workers {workers}: expected a positive number of processes, with --runner local"
        )
    if dask_address and runner != "dask":
        raise UserError("--dask-address: only with --runner dask")
    if (job_endpoint or worker_pool) and runner != "portable":
        raise UserError("--job-endpoint / --worker-pool: only with --runner portable")
    if runner == "local":
        return ["--runner=DirectRunner", *local_flags(None, workers=workers), _QUIET]
    if runner == "dask":
        try:
            # Registers Beam's Dask flags (--dask_client_address...) before they are parsed.
            import apache_beam.runners.dask.dask_runner  # noqa: F401
            import distributed  # noqa: F401
        except ImportError:
            raise UserError("--runner dask: needs Dask; pip install 'shardsmith[dask]'") from None
        return [f"--runner={_DASK_RUNNER}"] + (
            [f"--dask_client_address={dask_address}"] if dask_address else []
        )
    if runner == "portable":
        if not job_endpoint:
            raise UserError("--runner portable: expected --job-endpoint HOST:PORT")
        pool = ["--environment_type=EXTERNAL", f"--environment_config={worker_pool}"]
        return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}", _QUIET] + (
            pool if worker_pool else []
        )
    return [f"--runner={_BEAM_RUNNERS[runner]}"]


def beam_options(
    runner: str,
    workers: int | None,
    passthrough: Sequence[str],
    *,
    dask_address: str | None = None,
    job_endpoint: str | None = None,
    worker_pool: str | None = None,
):
    """The Beam ``PipelineOptions`` for ``--runner`` plus the flags shardsmith does not know.

    ``local`` is Beam's FnApiRunner in multi-processing mode with one worker per core (a run
    that knows its input is small moves to this process: ``sized_for_input``); ``dask``
    is Beam's DaskRunner (``dask_address``: the scheduler); ``portable`` submits to a Beam job
    server (``job_endpoint``), with the Python workers in an external ``worker_pool`` if given;
    ``dataflow``, ``flink``, ``spark`` select Beam's runners, configured by pass-through flags
    (``--project``, ``--region``, ``--temp_location``, ``--flink_master``, ...). Any
    pass-through flag overrides these defaults.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    defaults = _runner_flags(runner, workers, dask_address, job_endpoint, worker_pool)
    args = defaults + list(passthrough)
    options = PipelineOptions(args)
    unknown = _unknown_flags(options, passthrough)
    if unknown:
        raise UserError(f"unknown option {unknown[0]}: not a shardsmith or Beam flag (see --help)")
    if runner == "local" and workers is None and not _direct_flags(passthrough):
        _SIZED_BY_INPUT[options] = list(passthrough)
    return options


def sized_for_input(options, input_bytes: int | None, *, threshold: int = SMALL_INPUT_BYTES):
    """``options``, or in-process options when the input is known to be small.

    Only options from ``beam_options("local", None, ...)`` without ``--direct_*`` flags
    change: below ``threshold`` bytes the run needs no
    worker processes (see ``local_flags``). Anything else -- another runner, ``--workers N``,
    an explicit Beam flag, options built elsewhere -- comes back as it was.
    """
    passthrough = _SIZED_BY_INPUT.get(options)
    if passthrough is None or input_bytes is None or input_bytes >= threshold:
        return options
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = ["--runner=DirectRunner", *local_flags(input_bytes, threshold=threshold), _QUIET]
    return PipelineOptions(flags + passthrough)


def _direct_flags(passthrough: Sequence[str]) -> list[str]:
    # --direct_running_mode / --direct_num_workers given: the user chose how to run.
    return [a for a in passthrough if a.replace("-", "_").startswith("__direct_")]


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


def local_workers(options) -> int | None:
    """How many worker processes the local runner runs at once (1 in this process); None for
    any other runner, whose workers this machine cannot count before the run."""
    everything = options.get_all_options()
    if str(everything.get("runner") or "") != "DirectRunner":
        return None
    if everything.get("direct_running_mode") == "in_memory":
        return 1
    return int(everything.get("direct_num_workers") or 1)


def describe_runner(options) -> str:
    """``local runner, 2 workers`` / ``DaskRunner`` ...: for progress lines and logs."""
    everything = options.get_all_options()
    runner = str(everything.get("runner") or "")
    if runner == "DirectRunner":
        if everything.get("direct_running_mode") == "in_memory":
            return "local runner, in this process"
        return f"local runner, {everything.get('direct_num_workers')} workers"
    return runner.rsplit(".", 1)[-1]
