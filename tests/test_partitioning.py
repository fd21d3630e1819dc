"""``split_partitions``: the rows of each UTC day, named as Arrow formats the day."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from schemas import POSTS
from transforms.partitioning import split_partitions


def _by_formatting_every_row(table: pa.Table, column: str) -> list[tuple[str, pa.Table]]:
    # The definition: each row's timestamp formatted as its UTC date, rows grouped by it.
    ts = table.column(column)
    days = pc.strftime(pc.cast(ts, pa.timestamp(ts.type.unit, tz="UTC")), format="%Y-%m-%d")
    return [(d, table.filter(pc.equal(days, d))) for d in sorted(pc.unique(days).to_pylist())]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Tokyo"])
def test_days_are_the_utc_dates_of_the_rows(unit, tz):
    rng = np.random.default_rng(3)
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    # Around midnight UTC, before and after 1970, over a few days, in several chunks.
    seconds = rng.integers(-3 * 86_400, 3 * 86_400, 2_000) + 1_790_000_000 * rng.integers(
        0, 2, 2_000
    )
    values = seconds * per_second + rng.integers(0, per_second, 2_000)
    ts = pa.array(values, pa.int64()).cast(pa.timestamp(unit, tz=tz))
    table = pa.table({"created_at": pa.chunked_array([ts[:700], ts[700:]]), "n": range(2_000)})
    spec = dataclasses.replace(POSTS, partition_by="created_at")
    got = list(split_partitions(table, spec))
    want = _by_formatting_every_row(table, "created_at")
    assert len(want) > 2
    assert [d for d, _ in got] == [d for d, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a.column("n").to_pylist() == b.column("n").to_pylist()


def test_one_day_is_the_whole_table():
    ts = pa.array([1_790_000_000_000, 1_790_000_001_000], pa.timestamp("ms", tz="UTC"))
    table = pa.table({"created_at": ts})
    spec = dataclasses.replace(POSTS, partition_by="created_at")
    ((day, rows),) = split_partitions(table, spec)
    assert day == "2026-09-21" and rows is table


def test_a_null_time_is_an_error_not_a_day():
    ts = pa.array([1_790_000_000_000, None], pa.timestamp("ms", tz="UTC"))
    with pytest.raises(ValueError, match="created_at: 1 nulls"):
        list(split_partitions(pa.table({"created_at": ts}), POSTS))
