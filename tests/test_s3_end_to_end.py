"""Everything on object storage: sources and datasets on s3:// (moto's server on 127.0.0.1),
through the CLI as a user types it -- ingest posts and fleet, tokenize, query, inspect, history,
gc -- with credentials only in --storage-options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_bucket

from catalog import Dataset
from transforms.samples import (
    FleetSampleConfig,
    PostsSampleConfig,
    generate_fleet_sample,
    generate_posts_sample,
)

BIN = Path(sys.executable).parent / "shardsmith"
SECRET = "s3cr3t-e2e-never-print"


def _cli(*args, ok=True):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def s3(moto_endpoint, tmp_path_factory):
    import s3fs

    options = {
        "key": "AKIDE2E",
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    bucket = make_bucket(moto_endpoint)
    local = tmp_path_factory.mktemp("in")
    generate_posts_sample(str(local / "posts"), PostsSampleConfig(posts=120, seed=5))
    generate_fleet_sample(
        str(local / "fleet"),
        FleetSampleConfig(layout="generic", vehicles=1, sessions=1, cameras=2, duration_s=4.0),
    )
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(local) + "/", f"{bucket}/in/", recursive=True)
    return f"s3://{bucket}", ["--storage-options", json.dumps(options)], options


def test_every_command_on_s3(s3):
    root, flags, options = s3
    # -v: INFO logs of shardsmith and Beam go to stderr, which _cli checks for the secret too.
    _cli(
        "-v",
        "ingest",
        "posts",
        f"{root}/in/posts",
        "--to",
        f"{root}/posts",
        "--max-reject-rate",
        "0.1",
        *flags,
    )
    _cli("ingest", "fleet", f"{root}/in/fleet", "--to", f"{root}/clips", "--window", "2", *flags)
    done = _cli(
        "tokenize",
        f"{root}/posts",
        f"{root}/clips",
        "--to",
        f"{root}/tokens",
        "--seq-len",
        "256",
        *flags,
    )
    assert "committed (append, version 1)" in done.stdout
    posts = Dataset.open(f"{root}/posts", storage_options=options)
    tokens = Dataset.open(f"{root}/tokens", storage_options=options)
    n_posts = sum(f.rows for f in posts.files())
    n_docs = tokens.manifest().properties["total_documents"]
    counted = _cli("query", f"{root}/posts", "SELECT count(*) AS n FROM posts", *flags).stdout
    assert counted.splitlines() == ['"n"', str(n_posts)]
    joined = _cli(
        "query",
        f"{root}/tokens",
        f"{root}/clips",
        "SELECT count(DISTINCT s.id) AS n FROM (SELECT unnest(sources) AS s FROM tokens) "
        "WHERE s.id IN (SELECT clip_id FROM clips)",
        *flags,
    ).stdout
    assert joined.splitlines() == ['"n"', "2"]  # both clip windows were tokenized
    summary = json.loads(_cli("inspect", f"{root}/tokens", "--json", *flags).stdout)
    assert summary["tokens"]["document_tokens"]["documents"] == n_docs
    history = _cli("history", f"{root}/posts", "--json", *flags).stdout.splitlines()
    assert [json.loads(line)["version"] for line in history] == [1]
    # An orphan left by a crashed run is removed by gc, and only it.
    orphan = f"{root}/tokens/data/crashed-run-00000.parquet".removeprefix("s3://")
    tokens.fs.pipe_file(orphan, b"not really parquet")
    gc = _cli("gc", f"{root}/tokens", "--min-age", "0", *flags).stdout
    assert "crashed-run-00000.parquet" in gc and not tokens.fs.exists(orphan)
    assert len(tokens.files()) == len(tokens.fs.ls(f"{tokens.root}/data"))
    for ds in (posts, tokens):
        for version in ds.versions():
            assert SECRET not in ds.fs.cat_file(ds.path(f"manifests/v{version:08d}.json")).decode()
