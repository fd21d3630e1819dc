"""The same pipelines on the local runner, on Beam's DaskRunner against a Dask scheduler and two
workers, and on Beam's PortableRunner against Beam's job service with an external worker pool --
all started here, on 127.0.0.1 -- give identical dataset content, and report their progress to
the driver up to the plan's totals."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import free_port, wait_for_port
from test_progress import json_updates

from catalog import Dataset
from catalog.parquet import read_parquet
from pipelines.ingest_fleet import IngestFleetConfig
from pipelines.ingest_fleet import run as run_fleet
from pipelines.ingest_posts import IngestPostsConfig
from pipelines.ingest_posts import run as run_posts
from pipelines.tokenize import TokenizeConfig
from pipelines.tokenize import run as run_tokenize
from runners.errors import UserError
from runners.options import beam_options
from runners.progress import ProgressDisplay, showing
from transforms.samples import (
    FleetSampleConfig,
    PostsSampleConfig,
    generate_fleet_sample,
    generate_posts_sample,
)

BIN = Path(sys.executable).parent


def _start(args: list[str]) -> subprocess.Popen:
    # Beam's worker pool starts SDK workers as plain `python` from PATH: put this interpreter's
    # directory first, or the workers run in whatever Python the PATH finds (without Beam).
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PATH": path}
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A Dask scheduler and two single-threaded workers, on 127.0.0.1."""
    pytest.importorskip("distributed")
    from distributed import Client

    # The scheduler picks its own port and writes its address to a file: a port picked here
    # beforehand could be taken in between (once it was, and the client waited on whatever
    # listened there until it timed out).
    scheduler_file = str(tmp_path_factory.mktemp("dask") / "scheduler.json")
    scheduler = _start(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            scheduler_file,
        ]
    )
    workers = _start(
        [
            str(BIN / "dask"),
            "worker",
            "--scheduler-file",
            scheduler_file,
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        ]
    )
    try:
        with Client(scheduler_file=scheduler_file, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address
    finally:
        _stop([workers, scheduler])


@pytest.fixture(scope="module")
def job_service():
    """Beam's local job service and an external Python worker pool, on 127.0.0.1."""
    job_port, pool_port = free_port(), free_port()
    procs = [
        _start(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.portability.local_job_service_main",
                "--port",
                str(job_port),
            ]
        ),
        _start(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                "--service_port",
                str(pool_port),
            ]
        ),
    ]
    try:
        wait_for_port(job_port)
        wait_for_port(pool_port)
        yield f"127.0.0.1:{job_port}", f"127.0.0.1:{pool_port}"
    finally:
        _stop(procs)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    generate_posts_sample(str(root / "posts"), PostsSampleConfig(posts=150, seed=3))
    fleet = FleetSampleConfig(
        layout="generic", vehicles=1, sessions=1, cameras=2, duration_s=4.0, seed=3
    )
    generate_fleet_sample(str(root / "fleet"), fleet)
    return root


def _runners(dask_cluster, job_service) -> dict:
    job_endpoint, pool = job_service
    return {
        "local": beam_options("local", 2, []),
        "dask": beam_options("dask", None, [], dask_address=dask_cluster),
        "portable": beam_options("portable", None, [], job_endpoint=job_endpoint, worker_pool=pool),
    }


def _content(url: str, key: str | None) -> pa.Table:
    ds = Dataset.open(url)
    table = pa.concat_tables(read_parquet(ds.fs, ds.path(f.path)) for f in ds.files())
    return table.sort_by(key) if key else table


def _side_files(url: str) -> dict[str, pa.Table]:
    """The ``--dedup-near`` side files of the latest version, by directory, without run ids."""
    ds = Dataset.open(url)
    out = {}
    for prefix in ("minhash/", "near_duplicates/"):
        paths = [e.path for e in ds.manifest().side_files if e.path.startswith(prefix)]
        table = pa.concat_tables(read_parquet(ds.fs, ds.path(p)) for p in paths)
        if "run_id" in table.column_names:
            table = table.drop_columns(["run_id"])
        out[prefix] = table.sort_by("post_id")
    return out


def test_every_pipeline_gives_the_same_content_on_every_runner(
    samples, dask_cluster, job_service, tmp_path
):
    results = {}
    for name, options in _runners(dask_cluster, job_service).items():
        out = tmp_path / name
        started = time.monotonic()
        runs = [
            (
                run_posts,
                IngestPostsConfig(
                    sources=(str(samples / "posts"),),
                    dataset=str(out / "posts"),
                    max_reject_rate=0.1,  # the sample has malformed lines on purpose
                ),
            ),
            (
                run_fleet,
                IngestFleetConfig(
                    source=str(samples / "fleet"), dataset=str(out / "clips"), window_s=2.0
                ),
            ),
            (
                run_tokenize,
                # The same input datasets for every runner: a token's provenance names them.
                TokenizeConfig(
                    inputs=(str(tmp_path / "local" / "posts"), str(tmp_path / "local" / "clips")),
                    dataset=str(out / "tokens"),
                    seq_len=256,
                    shards=2,
                ),
            ),
            (
                # --dedup-near: its removals, their record and the stored signatures too
                run_posts,
                IngestPostsConfig(
                    sources=(str(samples / "posts"),),
                    dataset=str(out / "near"),
                    dedup_near=0.8,
                    max_reject_rate=0.1,
                ),
            ),
        ]
        reports = []
        for run, config in runs:
            # Every run shows its progress as --progress json does: the workers (processes of
            # the local runner, of the Dask cluster, of the worker pool) report to the CLI.
            progress = io.StringIO()
            with showing(ProgressDisplay(mode="json", stream=progress)):
                reports.append(run(config, options))
            last = json_updates(progress.getvalue())[-1]
            assert last["stage"].endswith(": finished") and last["done"] == last["total"]
            # Records, tokens: only the workers' reports count them (bundles run again --
            # Dask computes a step once per step reading it -- count once).
            report = reports[-1]
            if run is run_tokenize:
                tokens = report.stats["tokens"] - report.stats.get("padding_tokens", 0)
                assert last["tokens"] == tokens and last["done"] == report.records_in, name
            else:
                assert last["records"] == report.records_in, name
        assert [r.status for r in reports] == ["committed"] * 4, (name, reports)
        tokens = Dataset.open(str(out / "tokens"))
        results[name] = {
            "posts": _content(str(out / "posts"), "post_id"),
            "clips": _content(str(out / "clips"), "clip_id"),
            "near": _content(str(out / "near"), "post_id"),
            "near_side": _side_files(str(out / "near")),
            # Token shards: the same bytes, file by file (names differ only by run id).
            "tokens": [f.checksum for f in sorted(tokens.files(), key=lambda f: f.path)],
            "counts": [(r.records_in, r.records_written, r.records_rejected) for r in reports],
            "seconds": time.monotonic() - started,
        }
    local = results["local"]
    assert local["posts"].num_rows > 100 and local["clips"].num_rows == 2
    assert len(local["tokens"]) == 2
    # the sample's templated texts have near-duplicates: some went, each with its kept twin
    removed = local["near_side"]["near_duplicates/"]
    assert 0 < removed.num_rows == local["posts"].num_rows - local["near"].num_rows
    kept = set(local["near"].column("post_id").to_pylist())
    assert set(removed.column("kept_post_id").to_pylist()) <= kept
    assert local["near_side"]["minhash/"].column("post_id").to_pylist() == sorted(kept)
    for name in ("dask", "portable"):
        for what in ("posts", "clips", "near"):
            assert results[name][what].equals(local[what]), (name, what)
        for where, table in local["near_side"].items():
            assert results[name]["near_side"][where].equals(table), (name, where)
        assert results[name]["tokens"] == local["tokens"], name
        assert results[name]["counts"] == local["counts"], name


def test_runner_flags_are_checked():
    with pytest.raises(UserError, match="expected --job-endpoint"):
        beam_options("portable", None, [])
    with pytest.raises(UserError, match="--dask-address: only with --runner dask"):
        beam_options("local", None, [], dask_address="tcp://127.0.0.1:1")
    with pytest.raises(UserError, match="with --runner local"):
        beam_options("dask", 2, [])
    options = beam_options("flink", None, ["--flink_master=127.0.0.1:8081"])
    assert options.get_all_options()["runner"] == "FlinkRunner"
    with pytest.raises(UserError, match="unknown option --flink_mastr"):
        beam_options("flink", None, ["--flink_mastr=127.0.0.1:8081"])
