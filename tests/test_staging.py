"""Staged rows: written once, read by reference; references to one batch are merged so each
batch is read once."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa

from catalog.staging import StagedRows, merge_staged, read_staged, write_staged
from catalog.storage import open_url


def test_references_to_one_batch_are_read_once(tmp_path):
    fs, root = open_url(str(tmp_path), {})
    tables = [pa.table({"x": list(range(10))}), pa.table({"x": list(range(100, 105))})]
    write_staged(fs, root, "_staging/r/a.arrow", tables)
    write_staged(fs, root, "_staging/r/b.arrow", tables[:1])
    refs = [
        StagedRows("_staging/r/b.arrow", 0, np.array([1, 4]), "d"),
        StagedRows("_staging/r/a.arrow", 0, np.array([7, 8]), "d"),
        StagedRows("_staging/r/a.arrow", 1, None, "d"),
        StagedRows("_staging/r/a.arrow", 0, np.array([0, 3]), "d"),
    ]
    merged = merge_staged(refs)
    assert [(m.path, m.batch) for m in merged] == [
        ("_staging/r/a.arrow", 0),
        ("_staging/r/a.arrow", 1),
        ("_staging/r/b.arrow", 0),
    ]
    assert merged[0].rows.tolist() == [0, 3, 7, 8] and merged[1].rows is None
    one_by_one = sorted(v for r in refs for v in read_staged(fs, root, r).column("x").to_pylist())
    at_once = sorted(v for r in merged for v in read_staged(fs, root, r).column("x").to_pylist())
    assert at_once == one_by_one == [0, 1, 3, 4, 7, 8, 100, 101, 102, 103, 104]
    assert merge_staged([]) == []


def test_uncompressed_batches_read_the_same(tmp_path):
    fs, root = open_url(str(tmp_path), {})
    keys = np.random.default_rng(0).integers(0, 2**63, 5000, dtype=np.uint64)
    tables = [pa.table({"k": keys[:3000]}), pa.table({"k": keys[3000:]})]
    write_staged(fs, root, "_staging/r/lz4.arrow", tables)
    write_staged(fs, root, "_staging/r/plain.arrow", tables, compress=False)
    for i, table in enumerate(tables):
        for name in ("lz4", "plain"):
            assert read_staged(fs, root, StagedRows(f"_staging/r/{name}.arrow", i)).equals(table)
    # random hashes: LZ4 only adds its frames
    sizes = {n: (tmp_path / f"_staging/r/{n}.arrow").stat().st_size for n in ("lz4", "plain")}
    assert sizes["plain"] <= sizes["lz4"]


def test_a_pickled_reference_names_the_same_rows_in_a_fraction_of_the_bytes():
    rng = np.random.default_rng(1)
    dense = np.sort(rng.choice(10_000, 8_000, replace=False))
    cases = [
        dense,  # most rows of a batch: the bitmap
        np.sort(rng.choice(10_000, 400, replace=False)),  # sparse: 2 bytes a row
        np.array([5, 90_000]),  # far apart: 4 bytes a row
        np.array([3, 1, 2]),  # not ascending: 1 byte a row
        np.array([2, 2, 5]),  # repeated
        np.array([-1, 4]),  # not a row number: as it is
        np.array([0]),
        np.array([], np.int64),
        None,
    ]
    for rows in cases:
        ref = StagedRows("_staging/r/a.arrow", 3, rows, "2026-12-02")
        back = pickle.loads(pickle.dumps(ref))
        assert (back.path, back.batch, back.dt) == (ref.path, ref.batch, ref.dt)
        if rows is None:
            assert back.rows is None
        else:
            assert back.rows.tolist() == rows.tolist() and back.rows.dtype == np.int64
    plain = len(pickle.dumps(dense))
    assert len(pickle.dumps(StagedRows("p", 0, dense))) < plain / 40
