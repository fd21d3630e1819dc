"""TokenReader read-ahead: the next ``prefetch`` row groups are read in the background, never more,
one ranged request each; S3 (moto on 127.0.0.1) gives the same batches as local disk."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import make_bucket, s3_options
from test_token_reader import N, make_tokens, number, stream, unit_of

import catalog.token_reader as token_reader
from catalog import Dataset, TokenReader
from catalog.row_group_fetch import fetch_row_group, read_row_group


def _signature(reader: TokenReader) -> list:
    out = []
    for b in reader:
        media = [[(m["kind"], m["patches"].tobytes()) for m in e] for e in b.get("media", [])]
        out.append(
            (
                b["batch_index"],
                b["example_id"],
                b["input_ids"].tolist(),
                b["attention_mask"].tolist(),
                [d.tolist() for d in b["doc_lens"]],
                media,
            )
        )
    return out


@pytest.mark.s3
def test_s3_gives_the_same_batches_as_local_disk(tmp_path, moto_endpoint):
    local = str(tmp_path / "tokens")
    make_tokens(local, media=True)
    options = s3_options(moto_endpoint)
    s3 = f"s3://{make_bucket(moto_endpoint)}/tokens"
    make_tokens(s3, options, media=True)
    for rank, prefetch in itertools.product(range(2), (0, 1, 3)):
        kw = dict(batch_size=3, rank=rank, world_size=2, seed=8, epoch=2, prefetch=prefetch)
        expected = _signature(TokenReader(local, **kw))
        assert len(expected) == 9
        assert _signature(TokenReader(s3, storage_options=options, **kw)) == expected
        # And from a resumed position.
        reader = TokenReader(s3, storage_options=options, **kw)
        list(itertools.islice(reader, 4))
        resumed = TokenReader(s3, storage_options=options, **kw)
        resumed.load_state_dict(reader.state_dict())
        assert _signature(resumed) == expected[4:]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_reads_ahead_at_most_prefetch_row_groups(tmp_path, monkeypatch, depth):
    url = str(tmp_path / "tokens")
    make_tokens(url)
    paths = sorted(f.path for f in Dataset.open(url).files())
    kw = dict(batch_size=1, seed=5, prefetch=depth)  # batch 0: one row group
    # The row groups in the order the epoch needs them, and the last one each batch needs.
    batches = [[number(r) for r in b["input_ids"]] for b in TokenReader(url, **kw)]
    needed = [u for u, _ in itertools.groupby(unit_of(n) for b in batches for n in b)]
    upto = [max(needed.index(unit_of(n)) for n in b) for b in batches]

    lock = threading.Lock()
    consumed = 0
    reads = []  # (position of the row group in `needed`, batches the loop had received)

    def spy(fs, path, **kwargs):
        with lock:
            unit = (paths.index(path.split("/tokens/")[-1]), kwargs["group"])
            reads.append((needed.index(unit), consumed))
        return fetch_row_group(fs, path, **kwargs)

    monkeypatch.setattr(token_reader, "fetch_row_group", spy)
    got = []
    for batch in TokenReader(url, **kw):
        got.append([number(r) for r in batch["input_ids"]])
        if consumed == 0 and depth:
            # While the loop is busy with batch 0, the next `depth` row groups arrive.
            filled = threading.Event()
            for _ in range(3000):
                with lock:
                    if len(reads) >= upto[0] + 1 + depth:
                        filled.set()
                        break
                filled.wait(0.01)
            assert filled.is_set(), f"read-ahead did not fill: {reads}"
            # Give a read-ahead that does not stop there the time to show it (checked below).
            threading.Event().wait(0.3)
        with lock:
            consumed += 1

    assert got == batches
    assert sorted(k for k, _ in reads) == list(range(len(needed)))  # each row group read once
    for k, received in reads:
        # Batch `received` is the one being made: nothing beyond its row groups + depth.
        assert k <= upto[min(received, len(upto) - 1)] + depth, (k, received, reads)


def test_one_ranged_request_per_row_group(tmp_path, monkeypatch):
    url = str(tmp_path / "tokens")
    make_tokens(url, media=True)
    reader = TokenReader(url, batch_size=4, seed=1)
    fs = Dataset.open(url).fs  # fsspec's cached instance, the reader's too: count its calls
    calls = []
    real_cat = fs.cat_file
    monkeypatch.setattr(fs, "cat_file", lambda *a, **k: calls.append(k) or real_cat(*a, **k))
    assert sum(len(b["example_id"]) for b in reader) == N
    # One ranged request per row group (the footers were read when the reader was made).
    assert len(calls) == 14 and all(k["end"] > k["start"] > 0 for k in calls)


def test_read_row_group_reads_what_pyarrow_reads(tmp_path):
    url = str(tmp_path / "tokens")
    ds = make_tokens(url, media=True)
    for entry in ds.files():
        path = ds.path(entry.path)
        whole = pq.ParquetFile(path)
        for group in range(whole.num_row_groups):
            for columns in (["input_ids"], ["example_id", "media"], ["doc_lens", "sources"]):
                got = read_row_group(
                    ds.fs,
                    path,
                    size=entry.bytes,
                    metadata=whole.metadata,
                    group=group,
                    columns=columns,
                )
                assert got.equals(whole.read_row_group(group, columns=columns))


def test_a_read_error_surfaces_where_its_batch_would_be(tmp_path):
    url = str(tmp_path / "tokens")
    ds = make_tokens(url)
    reader = TokenReader(url, batch_size=4, seed=3, prefetch=3)
    batches = iter(reader)
    first = next(batches)
    for entry in ds.files():  # truncated under the reader: every later read fails
        with open(ds.path(entry.path), "r+b") as f:
            f.truncate(8)
    with pytest.raises(OSError, match="too short"):  # pyarrow's word for it, from a thread
        for _ in batches:
            pass
    assert len(first["example_id"]) == 4 and reader.next_batch >= 1


def test_prefetch_is_checked():
    with pytest.raises(ValueError, match="prefetch=-1: expected an integer >= 0"):
        TokenReader("/nowhere", batch_size=2, prefetch=-1)


def test_prefetch_does_not_change_the_batches(tmp_path):
    url = str(tmp_path / "tokens")
    make_tokens(url, files=(31, 9), row_group_size=3)
    for kw in (dict(seed=2), dict(shuffle=False), dict(seed=4, world_size=3, rank=2)):
        expected = stream(TokenReader(url, batch_size=5, prefetch=0, **kw))
        for depth in (1, 2, 8):
            assert stream(TokenReader(url, batch_size=5, prefetch=depth, **kw)) == expected
    assert np.array_equal(sorted(stream(TokenReader(url, batch_size=5, prefetch=8))), np.arange(40))
