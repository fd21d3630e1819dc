"""Running a write pipeline and reading back what it did."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from catalog import Dataset
from runners.allocator import tune_malloc
from runners.errors import RecordsLost
from runners.progress import ProgressPlan, watch
from transforms.run_report import RunReport
from transforms.write_shards import failed_report_path

__all__ = ["RunFailed", "nothing_new", "run_outcome", "run_pipeline"]

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """The run finished but committed nothing (too many rejects); ``report`` says why."""

    def __init__(self, report: RunReport):
        super().__init__(report.message)
        self.report = report


def run_pipeline(
    build: Callable[[Any], Any],
    options,
    *,
    dataset: str,
    run_id: str,
    base_version: int,
    storage_options: Mapping[str, Any] | None = None,
    input_bytes: int | None = None,
    small_input_bytes: int | None = None,
    progress: ProgressPlan | None = None,
) -> RunReport:
    """Build the pipeline with ``build(pipeline)``, run it to the end, and return its report.

    ``progress``: what the run will read (``runners.progress.ProgressPlan``); then ``build``
    is called as ``build(pipeline, target)``, ``target`` being the ``ProgressTarget`` its
    reading steps report to (None when nothing watches: outside ``runners.progress.showing``).

    ``input_bytes``: how much the run reads, known after planning; with default local-runner
    options, an input below ``small_input_bytes`` (default ``runners.options.SMALL_INPUT_BYTES``)
    runs in this process instead of starting worker processes (``sized_for_input``).
    Raises ``RunFailed`` (with the report) when the run rejected too much to commit.
    """
    import apache_beam as beam

    from runners.options import SMALL_INPUT_BYTES, sized_for_input

    threshold = SMALL_INPUT_BYTES if small_input_bytes is None else small_input_bytes
    tune_malloc()  # before the workers start: they inherit it (runners.allocator)
    options = sized_for_input(options, input_bytes, threshold=threshold)
    started = time.monotonic()
    runner = _local_runner(options)
    with (
        watch(progress, run_id, remote=_remote_workers(options)) as target,
        _worker_output_to_log(run_id) as worker_log,
    ):
        try:
            with beam.Pipeline(runner, options=options) as pipeline:
                if progress is None:
                    build(pipeline)
                else:
                    build(pipeline, target)
        except Exception as exc:
            lost = _lost_records(exc)
            if lost is None:
                raise
            where = f"; worker output is in {worker_log}" if worker_log else ""
            raise RecordsLost(f"{lost}; nothing committed{where}") from None
    report = run_outcome(dataset, run_id, base_version, storage_options)
    log.info("run %s finished in %.1fs: %s", run_id, time.monotonic() - started, report.status)
    if report.status == "failed":
        raise RunFailed(report)
    return report


def _remote_workers(options) -> str | None:
    """The name of a runner whose workers surely run elsewhere (None: maybe on this machine).

    Dataflow's workers are Google's machines: they cannot write to this machine's progress
    directory. Other runners' workers may share it (a Dask cluster, a Flink task manager or a
    worker pool on this machine); when they do not, the stall warning says no worker reported.
    """
    runner = str(options.get_all_options().get("runner") or "")
    return "Dataflow" if runner.rsplit(".", 1)[-1] in ("DataflowRunner", "dataflow") else None


def _local_runner(options):
    """Beam's FnApiRunner for ``--runner=DirectRunner`` in batch; None for any other runner.

    Beam's DirectRunner first tries its Prism runner, which downloads a binary from GitHub
    (0.2-0.3 s to fail offline, and a different runner that ignores the ``--direct_*`` flags
    online), then falls back to the FnApiRunner. This builds the FnApiRunner as the
    DirectRunner does, pipeline options included (worker processes read them).
    """
    from apache_beam.options.pipeline_options import StandardOptions

    standard = options.view_as(StandardOptions)
    if standard.runner != "DirectRunner" or standard.streaming:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(info))


def nothing_new(dataset: str, kind: str, run_id: str, consumed: int, what: str) -> RunReport:
    """The report of a run that found nothing new to read (no pipeline ran, nothing committed)."""
    report = RunReport(run_id=run_id, dataset=dataset, kind=kind, status="nothing-new")
    report.message = (
        f"nothing new: all {consumed} {what} were consumed by earlier versions; nothing committed"
    )
    return report


_LOST = re.compile(r"(run \S+: read \d+ records but accounted for [^\n]*?\))")


def _lost_records(exc: BaseException) -> str | None:
    """The nothing-lost guard's message, if ``exc`` is its failure as the runner reports it.

    The guard runs in the commit step, on a worker: runners re-raise its ``NothingLostError``
    as their own exception, with the worker's traceback in the text.
    """
    for error in (exc, exc.__cause__, exc.__context__):
        text = f"{type(error).__name__}: {error}"
        found = _LOST.search(text) if "NothingLostError" in text else None
        if found:
            return found.group(1)
    return None


@contextmanager
def _worker_output_to_log(run_id: str) -> Iterator[str | None]:
    """Send what worker processes print (Beam's start-up chatter) to a log file.

    Workers inherit file descriptor 2; this process keeps writing to the terminal through a
    duplicate of it. With ``-v`` (INFO logging) nothing is redirected. On failure the log's
    path is logged, so nothing a worker said is lost; a run that succeeds removes it (a
    scheduled tick a minute would otherwise leave a file a minute in the temp directory), and
    so does a run that fails before any worker said anything (most user errors): an empty log
    is neither kept nor named.
    """
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield None
        return
    path = os.path.join(tempfile.gettempdir(), f"shardsmith-{run_id}-workers.log")
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    previous = sys.stderr
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 2)
    sys.stderr = terminal
    keep = False
    try:
        yield path
    except RecordsLost:
        keep = True  # its one line names the log
        raise
    except BaseException:
        keep = os.path.getsize(path) > 0
        if keep:
            print(f"shardsmith: worker output is in {path}", file=terminal)
        raise
    finally:
        sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()
        if not keep:
            os.unlink(path)


def run_outcome(
    dataset: str,
    run_id: str,
    since: int,
    storage_options: Mapping[str, Any] | None = None,
) -> RunReport:
    """The report of ``run_id``: from the version it committed, or from its failure report.

    The commit step runs on a worker, maybe on another machine; the dataset is the only place
    its outcome is sure to reach.
    """
    ds = Dataset.open(dataset, storage_options=storage_options)
    manifest = ds.find_run(run_id, since)
    if manifest is not None:
        report = RunReport.from_dict(manifest.report)
        report.version = manifest.version
        return report
    try:
        raw = ds.fs.cat_file(ds.path(failed_report_path(run_id)))
    except FileNotFoundError:
        report = RunReport(run_id=run_id, dataset=ds.url, kind=ds.kind, status="nothing-new")
        report.message = "nothing new to commit"
        return report
    return RunReport.from_dict(json.loads(raw))
