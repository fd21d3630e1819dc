"""Positions of the rows to write, staged: each writer group gets one reference and reads back
exactly the rows of its partition and writer, as references per staged batch named them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from catalog.staging import StagedPositions, StagedRows, merge_staged, staged_rows
from catalog.storage import open_url
from transforms.write_shards import _staged_writer, _StagePositionsFn


def _positions() -> pa.Table:
    # Rows of six staged files, two batches each (one per dt), in no particular order.
    rng = np.random.default_rng(7)
    files, batches, rows, dts = [], [], [], []
    for f in range(6):
        for batch, dt in enumerate(["2026-11-01", "2026-11-02"]):
            picked = rng.choice(500, size=40, replace=False)
            files += [f"_staging/r/{f:02d}.rows.arrow"] * len(picked)
            batches += [batch] * len(picked)
            rows += picked.tolist()
            dts += [dt] * len(picked)
    order = rng.permutation(len(rows))
    return pa.table(
        {
            "_file": pa.array(files, pa.string()).take(order),
            "_batch": pa.array(batches, pa.int32()).take(order),
            "_row": pa.array(rows, pa.int32()).take(order),
            "_dt": pa.array(dts, pa.string()).take(order),
        }
    )


def _expected(table: pa.Table, dt: str, writer: int, writers: int) -> list[StagedRows]:
    # What the resolve step handed the writers before: one reference per staged batch.
    refs = []
    for f, b, r, d in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
        if d == dt and _staged_writer(f, writers) == writer:
            refs.append(StagedRows(f, b, np.array([r]), d))
    return merge_staged(refs)


def _staged(tmp_path, table, writers):
    fn = _StagePositionsFn(str(tmp_path), {}, "r", writers)
    fn.setup()
    return list(fn.process(table))


def test_each_writer_group_reads_exactly_its_rows(tmp_path):
    table = _positions()
    fs, root = open_url(str(tmp_path), {})
    out = _staged(tmp_path, table, writers=2)
    keys = [key for key, _ in out]
    assert len(keys) == len(set(keys)) == 4  # two days x two writers, one reference each
    assert len({ref.path for _, ref in out}) == 1  # one staged file for the whole table
    for (dt, writer), ref in out:
        assert isinstance(ref, StagedPositions)
        got = merge_staged(staged_rows(fs, root, ref))
        want = _expected(table, dt, writer, 2)
        assert [(g.path, g.batch, g.dt) for g in got] == [(w.path, w.batch, w.dt) for w in want]
        for g, w in zip(got, want, strict=True):
            assert g.rows.tolist() == w.rows.tolist()
    total = sum(len(r.rows) for (dt, _), ref in out for r in staged_rows(fs, root, ref))
    assert total == table.num_rows  # every position once


def test_a_retry_stages_the_same_file(tmp_path):
    table = _positions()
    first = _staged(tmp_path, table, writers=3)
    again = _staged(tmp_path, table, writers=3)
    assert first == again
    fs, _ = open_url(str(tmp_path), {})
    assert len(fs.glob(f"{tmp_path}/_staging/r/*.positions.arrow")) == 1


def test_no_positions_stage_nothing(tmp_path):
    assert _staged(tmp_path, _positions().slice(0, 0), writers=2) == []
    assert not (tmp_path / "_staging").exists()
