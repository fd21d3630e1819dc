"""``shardsmith query`` writes every DuckDB type in every format (runners.result_formats): nested
values as JSON in CSV cells and on a terminal, native in JSON lines and Parquet, BLOBs as their
size on a terminal and base64 in CSV and JSON."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from catalog import Dataset

BIN = Path(sys.executable).parent / "shardsmith"

# column -> (SQL, CSV cell, JSON value)
VALUES = {
    "i": ("42::INTEGER", "42", 42),
    "h": ("170141183460469231731687303715884105727::HUGEINT", None, 2**127 - 1),
    "d": ("12.50::DECIMAL(10,2)", "12.50", 12.5),
    "s": ("'a \"q\", b'", 'a "q", b', 'a "q", b'),
    "b": ("'\\xAA\\xBB'::BLOB", base64.b64encode(b"\xaa\xbb").decode(), "qrs="),
    "t": ("TIMESTAMP '2026-11-20 08:00:00'", "2026-11-20 08:00:00.000000", "2026-11-20T08:00:00"),
    "iv": (
        "INTERVAL 3 DAY",
        '{"months":0,"days":3,"nanoseconds":0}',
        {"months": 0, "days": 3, "nanoseconds": 0},
    ),
    "l": ("['x', 'y']", '["x","y"]', ["x", "y"]),
    "st": ("{'k': 1, 'v': [2, 3]}", '{"k":1,"v":[2,3]}', {"k": 1, "v": [2, 3]}),
    "m": ("MAP {'a': 1, 'b': 2}", '{"a":1,"b":2}', {"a": 1, "b": 2}),
    "u": ("union_value(num := 2)", "2", 2),
    "e": ("'x'::ENUM('x', 'y')", "x", "x"),
    "n": ("NULL", "", None),
}
SQL = "SELECT " + ", ".join(f"{sql} AS {name}" for name, (sql, _, _) in VALUES.items())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return Dataset.create(str(tmp_path_factory.mktemp("q") / "posts"), "posts").url


def _query(dataset, *args) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(BIN), "query", dataset, SQL, *args], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_csv_cells(dataset):
    rows = list(csv.DictReader(io.StringIO(_query(dataset, "--format", "csv").stdout.decode())))
    assert len(rows) == 1
    for name, (_, cell, _) in VALUES.items():
        if cell is not None:
            assert rows[0][name] == cell, name
    assert int(rows[0]["h"]) == 2**127 - 1


def test_json_lines(dataset):
    lines = _query(dataset, "--format", "json").stdout.splitlines()
    row = json.loads(lines[0])
    assert len(lines) == 1
    assert row == {name: value for name, (_, _, value) in VALUES.items()}


def test_parquet(dataset, tmp_path):
    out = tmp_path / "r.parquet"
    _query(dataset, "--format", "parquet", "--out", str(out))
    row = pq.read_table(out).to_pylist()[0]
    assert row["b"] == b"\xaa\xbb" and row["l"] == ["x", "y"] and row["m"] == [("a", 1), ("b", 2)]
    assert row["st"] == {"k": 1, "v": [2, 3]} and row["u"] == "2"
    assert row["iv"] == {"months": 0, "days": 3, "nanoseconds": 0}


def test_terminal_table(dataset):
    text = _query(dataset, "--format", "table").stdout.decode()
    assert "<2 bytes>" in text and '["x","y"]' in text and '{"a":1,"b":2}' in text
    assert "1 row" in text


def test_no_rows_still_writes_the_columns(dataset, tmp_path):
    out = tmp_path / "empty.parquet"
    done = subprocess.run(
        [str(BIN), "query", dataset, SQL + " WHERE false", "--format", "parquet", "--out", out],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert pq.read_table(out).num_rows == 0
    assert pq.read_schema(out).names == list(VALUES)
