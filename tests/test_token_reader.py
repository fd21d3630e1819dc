"""TokenReader and its torch wrapper: coverage, order, ranks, resume, media, DataLoader workers."""

from __future__ import annotations

import itertools
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tablegen import posts_table, write_data_file

from catalog import CommitRequest, Dataset, DatasetError, TokenReader, new_run_id
from schemas import TOKENS, FileEntry

SEQ = 8
PAD = 1
SHORT = SEQ - 3  # the last example of every file is this long (concat mode)
FILES = (23, 17, 10)  # N = 50: not a multiple of 3 (ranks) nor of the batch sizes
N = sum(FILES)
# Files are written in this order but named so that path order differs: example numbers follow
# path order, so shuffle=False must read 0..N-1 whatever order the manifest lists the files in.
NAMES = ("b", "c", "a")


def props(pack: str = "concat", **tokenizer) -> dict:
    return {
        "seq_len": SEQ,
        "pack": pack,
        "seed": 7,
        "tokenizer": {
            "name": "test",
            "vocab_size": 100_000,
            "sha256": "0" * 64,
            "special_tokens": {"eos": 0, "pad": PAD},
            **tokenizer,
        },
    }


def ids_of(n: int, length: int) -> list[int]:
    """Example ``n``'s tokens: its number is in every token (never the pad or eos id)."""
    return [n * 100 + j + 2 for j in range(length)]


def number(tokens: np.ndarray) -> int:
    return (int(tokens[0]) - 2) // 100


def media_of(n: int) -> list[dict]:
    """Every fifth example has a clip of 2 frames of 4x4 patches; every tenth a second one."""
    if n % 5:
        return []
    items = [
        {
            "kind": "video",
            "shape": [2, 4, 4, 3],
            "patches": (np.arange(96) + n).astype(np.uint8).tobytes(),
        }
    ]
    if n % 10 == 0:
        items.append({"kind": "image", "shape": [1, 2, 2, 3], "patches": bytes([n % 256] * 12)})
    return items


def make_tokens(
    url: str,
    storage_options: dict | None = None,
    *,
    files=FILES,
    row_group_size: int = 4,
    media: bool = False,
    properties: dict | None = None,
) -> Dataset:
    """A committed tokens dataset of ``sum(files)`` examples, ``e0000``.., several row groups."""
    ds = Dataset.create(url, "tokens", storage_options=storage_options)
    ds.fs.makedirs(ds.path("data"), exist_ok=True)
    run_id = new_run_id()
    order = sorted(range(len(files)), key=lambda k: NAMES[k])
    first = {k: sum(files[j] for j in order[: order.index(k)]) for k in order}
    entries = []
    for k, rows in enumerate(files):
        records = []
        for i in range(rows):
            n = first[k] + i
            length = SEQ if i < rows - 1 else SHORT
            records.append(
                {
                    "example_id": f"e{n:04d}",
                    "input_ids": ids_of(n, length),
                    "doc_lens": [length - 2, 2],
                    "sources": [{"dataset": "posts", "id": f"p{n}", "offset": 0, "length": 3}],
                    "media": media_of(n) if media else None,
                }
            )
        rel = f"data/{run_id}-{NAMES[k]}.parquet"
        with ds.fs.open(ds.path(rel), "wb") as f:
            pq.write_table(
                pa.Table.from_pylist(records, schema=TOKENS.schema),
                f,
                row_group_size=row_group_size,
            )
        entries.append(FileEntry(rel, rows, ds.fs.size(ds.path(rel)), "sha256:test"))
    ds.commit(CommitRequest(run_id=run_id, add=entries, properties=properties or props()))
    return ds


def short_numbers(files=FILES) -> set[int]:
    """The numbers of the last example of each file (in path order)."""
    sizes = [files[k] for k in sorted(range(len(files)), key=lambda k: NAMES[k])]
    return {int(x) - 1 for x in np.cumsum(sizes)}


def unit_of(n: int, files=FILES, row_group_size: int = 4) -> tuple[int, int]:
    """(file in path order, row group) of example ``n``."""
    sizes = [files[k] for k in sorted(range(len(files)), key=lambda k: NAMES[k])]
    for k, start in enumerate(np.cumsum([0, *sizes[:-1]])):
        if n < start + sizes[k]:
            return k, (n - int(start)) // row_group_size
    raise AssertionError(n)


def stream(reader) -> list[int]:
    """The example numbers of every batch the reader yields from its position on."""
    out = []
    for batch in reader:
        numbers = [number(row) for row in batch["input_ids"]]
        assert batch["example_id"] == [f"e{n:04d}" for n in numbers]
        out += numbers
    return out


@pytest.fixture
def tokens_url(tmp_path) -> str:
    url = str(tmp_path / "tokens")
    make_tokens(url)
    return url


def count_reads(monkeypatch) -> list:
    """Record every row group read: (file path, row group)."""
    reads = []
    real = pq.ParquetFile.read_row_group

    def read_row_group(self, i, *args, **kwargs):
        reads.append(i)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    return reads


# -- 1. one epoch --------------------------------------------------------------------------------


def test_one_epoch_yields_every_example_once(store, monkeypatch):
    url = store.url("tokens")
    make_tokens(url, store.storage_options)
    reads = count_reads(monkeypatch)
    reader = TokenReader(url, batch_size=4, seed=3, storage_options=store.storage_options)
    assert reader.version == 1 and len(reader) == 13  # ceil(50 / 4)
    batches = list(reader)
    assert len(batches) == 13 and [b["batch_index"] for b in batches] == list(range(13))
    assert [len(b["example_id"]) for b in batches] == [4] * 12 + [2]
    # One read per row group: ceil(23/4) + ceil(17/4) + ceil(10/4) = 6 + 5 + 3.
    assert len(reads) == 14
    seen = []
    for batch in batches:
        b = len(batch["example_id"])
        assert batch["input_ids"].shape == (b, SEQ) and batch["input_ids"].dtype == np.int32
        assert batch["attention_mask"].shape == (b, SEQ)
        assert batch["attention_mask"].dtype == np.uint8
        assert batch["lengths"].dtype == np.int32 and batch["lengths"].shape == (b,)
        assert "media" not in batch
        for i, row in enumerate(batch["input_ids"]):
            n = number(row)
            seen.append(n)
            length = SHORT if n in short_numbers() else SEQ
            assert row.tolist() == ids_of(n, length) + [PAD] * (SEQ - length)
            assert batch["attention_mask"][i].tolist() == [1] * length + [0] * (SEQ - length)
            assert batch["lengths"][i] == length
            assert batch["doc_lens"][i].dtype == np.int32
            assert batch["doc_lens"][i].tolist() == [length - 2, 2]
    assert sorted(seen) == list(range(N))
    assert seen != sorted(seen)  # shuffled
    assert {SHORT} == {int(x) for b in batches for x in b["lengths"] if x != SEQ}
    assert list(reader) == []  # the epoch is over until set_epoch


def test_pad_mode_counts_doc_lens_as_real_tokens(tmp_path):
    url = str(tmp_path / "padded")
    ds = Dataset.create(url, "tokens")
    ds.fs.makedirs(ds.path("data"), exist_ok=True)
    rows = [
        {"example_id": "a", "input_ids": [5, 6, 7, 0, PAD, PAD, PAD, PAD], "doc_lens": [4]},
        {"example_id": "b", "input_ids": [8, 9, 0, 10, 11, 0, PAD, PAD], "doc_lens": [3, 3]},
    ]
    entry = write_data_file(ds, "data/r-00000.parquet", pa.Table.from_pylist(rows, TOKENS.schema))
    ds.commit(CommitRequest(run_id="r", add=[entry], properties=props("pad")))
    (batch,) = TokenReader(url, batch_size=2, shuffle=False)
    assert batch["lengths"].tolist() == [4, 6]
    assert batch["attention_mask"].sum(axis=1).tolist() == [4, 6]
    assert batch["input_ids"][0].tolist() == rows[0]["input_ids"]


# -- 2. order ------------------------------------------------------------------------------------


def test_order_depends_on_seed_and_epoch_only(tokens_url):
    first = stream(TokenReader(tokens_url, batch_size=4, seed=5))
    assert stream(TokenReader(tokens_url, batch_size=4, seed=5)) == first
    assert stream(TokenReader(tokens_url, batch_size=7, seed=5)) == first  # batches cut the stream
    epoch1 = stream(TokenReader(tokens_url, batch_size=4, seed=5, epoch=1))
    assert sorted(epoch1) == list(range(N)) and epoch1 != first
    reader = TokenReader(tokens_url, batch_size=4, seed=5)
    stream(reader)
    reader.set_epoch(1)
    assert reader.epoch == 1 and stream(reader) == epoch1
    assert stream(TokenReader(tokens_url, batch_size=4, seed=6)) != first
    # The units are row groups: each one's rows come together, in some order.
    runs = [unit for unit, _ in itertools.groupby(unit_of(n) for n in first)]
    assert len(runs) == len(set(runs)) == 14
    assert runs != sorted(runs)  # the units are shuffled too


def test_rows_inside_a_row_group_are_shuffled_per_epoch(tmp_path):
    url = str(tmp_path / "one-group")
    make_tokens(url, files=(12,), row_group_size=100)
    epoch0 = stream(TokenReader(url, batch_size=5, seed=2))
    epoch1 = stream(TokenReader(url, batch_size=5, seed=2, epoch=1))
    assert sorted(epoch0) == sorted(epoch1) == list(range(12))
    assert len({tuple(epoch0), tuple(epoch1), tuple(range(12))}) == 3
    # Changing the epoch mid-way (the row group already in memory) starts the new order.
    reader = TokenReader(url, batch_size=5, seed=2)
    next(iter(reader))
    reader.set_epoch(1)
    assert reader.next_batch == 0 and stream(reader) == epoch1


def test_shuffle_false_reads_files_in_path_order(tokens_url):
    reader = TokenReader(tokens_url, batch_size=4, shuffle=False, seed=9, epoch=4)
    assert stream(reader) == list(range(N))


# -- 3. ranks ------------------------------------------------------------------------------------


def test_ranks_split_the_epoch_into_contiguous_slices(tokens_url, monkeypatch):
    whole = stream(TokenReader(tokens_url, batch_size=4, seed=11, epoch=2))
    parts = []
    for rank in range(3):
        reads = count_reads(monkeypatch)
        reader = TokenReader(tokens_url, batch_size=4, rank=rank, world_size=3, seed=11, epoch=2)
        part = stream(reader)
        assert len(reader) == -(-len(part) // 4)
        assert len(reads) < 14  # only the row groups of its slice
        parts.append(part)
    assert [len(p) for p in parts] == [16, 17, 17]
    assert parts[0] + parts[1] + parts[2] == whole  # contiguous, in order
    assert sorted(parts[0] + parts[1] + parts[2]) == list(range(N))

    kw = dict(batch_size=4, world_size=3, seed=11, epoch=2)
    dropped = TokenReader(tokens_url, rank=1, drop_last=True, **kw)
    batches = list(dropped)
    assert len(dropped) == len(batches) == 4
    assert all(len(b["example_id"]) == 4 for b in batches)
    # drop_last keeps ranks in lockstep: 50 // 3 = 16 examples each, 4 full batches each.
    assert {len(TokenReader(tokens_url, rank=r, drop_last=True, **kw)) for r in range(3)} == {4}
    assert stream(TokenReader(tokens_url, rank=1, drop_last=True, **kw)) == whole[16:32]

    many = [
        stream(TokenReader(tokens_url, batch_size=4, rank=r, world_size=60, seed=11, epoch=2))
        for r in range(60)
    ]
    assert list(itertools.chain(*many)) == whole and {len(p) for p in many} == {0, 1}


# -- 4. resume -----------------------------------------------------------------------------------


def _signature(batches) -> list:
    return [
        (b["batch_index"], b["example_id"], b["input_ids"].tolist(), b["lengths"].tolist())
        for b in batches
    ]


def test_resume_from_state_dict(tokens_url):
    kw = dict(batch_size=3, rank=1, world_size=2, seed=21)
    uninterrupted = _signature(TokenReader(tokens_url, **kw))
    assert len(uninterrupted) == 9  # 25 examples

    reader = TokenReader(tokens_url, **kw)
    head = _signature(itertools.islice(reader, 4))
    state = json.loads(json.dumps(reader.state_dict()))
    assert state == {
        "version": 1,
        "seed": 21,
        "shuffle": True,
        "epoch": 0,
        "rank": 1,
        "world_size": 2,
        "batch_size": 3,
        "next_batch": 4,
        "drop_last": False,
        "plan": [[0, N]],  # the whole epoch's stream
    }
    resumed = TokenReader(tokens_url, **kw, epoch=5)
    resumed.load_state_dict(state)
    assert resumed.epoch == 0 and resumed.next_batch == 4
    assert head + _signature(resumed) == uninterrupted
    # A state saved before elastic resume (no drop_last, no plan) resumes as it did.
    resumed = TokenReader(tokens_url, **kw)
    resumed.load_state_dict({k: v for k, v in state.items() if k not in ("drop_last", "plan")})
    assert head + _signature(resumed) == uninterrupted

    # A pickled reader (as sent to a DataLoader worker) carries its position too.
    reader = TokenReader(tokens_url, **kw)
    head = _signature(itertools.islice(reader, 2))
    assert head + _signature(pickle.loads(pickle.dumps(reader))) == uninterrupted

    # Mid-way through a later epoch.
    epoch3 = _signature(TokenReader(tokens_url, **kw, epoch=3))
    reader.set_epoch(3)
    head = _signature(itertools.islice(reader, 7))
    resumed = TokenReader(tokens_url, **kw)
    resumed.load_state_dict(json.loads(json.dumps(reader.state_dict())))
    assert head + _signature(resumed) == epoch3 != uninterrupted


def test_mismatched_state_is_refused(tokens_url):
    # Another rank, world size or batch size is an elastic resume (tests/test_elastic_resume.py).
    kw = dict(batch_size=3, rank=1, world_size=2, seed=21)
    state = TokenReader(tokens_url, **kw).state_dict()
    for key, other in [("seed", 22), ("shuffle", False)]:
        reader = TokenReader(tokens_url, **{**kw, key: other})
        with pytest.raises(ValueError, match=f"state: {key} is {state[key]}"):
            reader.load_state_dict(state)
    old = {k: v for k, v in state.items() if k not in ("drop_last", "plan")}
    with pytest.raises(ValueError, match="saved without 'plan' and 'drop_last'"):
        TokenReader(tokens_url, **{**kw, "world_size": 3}).load_state_dict(old)
    for bad, message in [
        ({"plan": [[0, N + 1]]}, rf"plan has \[0, {N + 1}\], expected 0 <= start < stop"),
        ({"plan": [[10, 20], [5, 8]]}, "overlapping or out of order"),
        ({"plan": "all"}, "expected a list of"),
        ({"drop_last": "yes"}, "drop_last is 'yes'"),
    ]:
        with pytest.raises(ValueError, match=message):
            TokenReader(tokens_url, **kw).load_state_dict({**state, **bad})
    with pytest.raises(ValueError, match="no 'next_batch'"):
        TokenReader(tokens_url, **kw).load_state_dict(
            {k: v for k, v in state.items() if k != "next_batch"}
        )
    with pytest.raises(ValueError, match="next_batch is 10, but this rank has 9 batches"):
        TokenReader(tokens_url, **kw).load_state_dict({**state, "next_batch": 10})

    ds = Dataset.open(tokens_url)
    more = write_data_file(ds, "data/more-00000.parquet", TOKENS.schema.empty_table())
    ds.commit(CommitRequest(run_id="more", add=[more], properties=props()))
    latest = TokenReader(tokens_url, **kw)
    assert latest.version == 2
    with pytest.raises(ValueError, match=r"state: version is 1, this reader's version is 2"):
        latest.load_state_dict(state)
    pinned = TokenReader(tokens_url, **kw, version=1)
    pinned.load_state_dict(state)


# -- 5. media ------------------------------------------------------------------------------------


def test_media_is_decoded_with_its_shape(tmp_path):
    url = str(tmp_path / "mm")
    make_tokens(url, media=True)
    with_media = without = 0
    for batch in TokenReader(url, batch_size=3, seed=1):
        numbers = [number(row) for row in batch["input_ids"]]
        if not any(media_of(n) for n in numbers):
            assert "media" not in batch
            without += 1
            continue
        with_media += 1
        assert len(batch["media"]) == len(numbers)
        for n, got in zip(numbers, batch["media"], strict=True):
            expected = media_of(n)
            assert [m["kind"] for m in got] == [m["kind"] for m in expected]
            for m, e in zip(got, expected, strict=True):
                assert m["patches"].dtype == np.uint8 and m["patches"].shape == tuple(e["shape"])
                assert m["patches"].tobytes() == e["patches"]
                assert m["patches"].flags.writeable
    assert with_media and without


def test_media_with_the_wrong_shape_is_refused(tmp_path):
    url = str(tmp_path / "bad-media")
    ds = Dataset.create(url, "tokens")
    row = {
        "example_id": "x",
        "input_ids": [2, 3],
        "doc_lens": [2],
        "media": [{"kind": "video", "shape": [2, 4, 4, 3], "patches": bytes(95)}],
    }
    entry = write_data_file(ds, "data/r-00000.parquet", pa.Table.from_pylist([row], TOKENS.schema))
    ds.commit(CommitRequest(run_id="r", add=[entry], properties=props()))
    with pytest.raises(DatasetError, match=r"example 'x': media 'video' has shape .* 95 bytes"):
        list(TokenReader(url, batch_size=1))


# -- 6. torch ------------------------------------------------------------------------------------


def _loader_stream(reader, workers: int) -> list:
    from torch.utils.data import DataLoader

    from catalog.torch_dataset import TokenIterableDataset

    out = []
    for batch in DataLoader(TokenIterableDataset(reader), batch_size=None, num_workers=workers):
        assert str(batch["input_ids"].dtype) == "torch.int32"
        assert str(batch["attention_mask"].dtype) == "torch.uint8"
        assert str(batch["lengths"].dtype) == "torch.int32"
        mask = batch["attention_mask"].tolist()
        out.append((batch["batch_index"], batch["example_id"], batch["input_ids"].tolist(), mask))
    return out


def test_dataloader_workers_give_the_same_batches(tokens_url):
    pytest.importorskip("torch")
    kw = dict(batch_size=3, world_size=2, seed=4, epoch=1)
    examples = []
    for rank in range(2):
        single = _loader_stream(TokenReader(tokens_url, rank=rank, **kw), 0)
        assert [b[0] for b in single] == list(range(9))
        assert _loader_stream(TokenReader(tokens_url, rank=rank, **kw), 2) == single
        examples += [e for b in single for e in b[1]]
        # From a resumed position that is not a multiple of the worker count.
        # (The reader has a file open and a row group in memory when the workers fork.)
        reader = TokenReader(tokens_url, rank=rank, **kw)
        assert len(list(itertools.islice(reader, 3))) == 3
        assert _loader_stream(reader, 2) == single[3:]
        assert _loader_stream(reader, 0) == single[3:]
    assert sorted(examples) == [f"e{n:04d}" for n in range(N)]


def test_torch_dataset_takes_only_a_reader():
    pytest.importorskip("torch")
    from catalog.torch_dataset import TokenIterableDataset

    with pytest.raises(TypeError, match="expected a TokenReader, got str"):
        TokenIterableDataset("/some/url")


# -- 7. refusals ---------------------------------------------------------------------------------


def test_a_posts_dataset_is_refused(tmp_path):
    url = str(tmp_path / "posts")
    ds = Dataset.create(url, "posts")
    entry = write_data_file(ds, "data/r-00000.parquet", posts_table(3))
    ds.commit(CommitRequest(run_id="r", add=[entry]))
    with pytest.raises(DatasetError, match="is a posts dataset; TokenReader reads tokens datasets"):
        TokenReader(url, batch_size=2)
    with pytest.raises(DatasetError, match="is a posts dataset"):
        TokenReader(Dataset.open(url), batch_size=2)


def test_bad_arguments_and_manifests_are_refused(tmp_path, tokens_url):
    for kw, message in [
        ({"batch_size": 0}, "batch_size=0: expected an integer >= 1"),
        ({"batch_size": 2.0}, "batch_size=2.0: expected an integer >= 1"),
        (
            {"batch_size": 2, "rank": 3, "world_size": 3},
            "rank=3: expected 0 <= rank < world_size=3",
        ),
        ({"batch_size": 2, "rank": -1}, "rank=-1: expected an integer >= 0"),
        ({"batch_size": 2, "world_size": 0}, "world_size=0: expected an integer >= 1"),
        ({"batch_size": 2, "seed": -5}, "seed=-5: expected an integer >= 0"),
        ({"batch_size": 2, "version": 7}, "no version 7"),
    ]:
        with pytest.raises(ValueError, match=message):
            TokenReader(tokens_url, **kw)
    with pytest.raises(ValueError, match="storage_options: only for a dataset given as a URL"):
        TokenReader(Dataset.open(tokens_url), batch_size=2, storage_options={})

    empty = str(tmp_path / "empty")
    Dataset.create(empty, "tokens")
    with pytest.raises(DatasetError, match="no committed version"):
        TokenReader(empty, batch_size=2)

    no_pad = str(tmp_path / "no-pad")
    bad = props()
    bad["tokenizer"]["special_tokens"] = {"eos": 0}
    make_tokens(no_pad, files=(3,), properties=bad)
    with pytest.raises(DatasetError, match=r"tokenizer\.special_tokens\.pad is None"):
        TokenReader(no_pad, batch_size=2)
    no_pack = str(tmp_path / "no-pack")
    make_tokens(no_pack, files=(3,), properties={**props(), "pack": "zip"})
    with pytest.raises(DatasetError, match="manifest property pack is 'zip'"):
        TokenReader(no_pack, batch_size=2)


def test_examples_longer_than_seq_len_are_refused(tmp_path):
    url = str(tmp_path / "long")
    ds = Dataset.create(url, "tokens")
    row = {"example_id": "long", "input_ids": list(range(2, SEQ + 3)), "doc_lens": [SEQ + 1]}
    entry = write_data_file(ds, "data/r-00000.parquet", pa.Table.from_pylist([row], TOKENS.schema))
    ds.commit(CommitRequest(run_id="r", add=[entry], properties=props()))
    with pytest.raises(DatasetError, match=f"example 'long' has {SEQ + 1} tokens, more than"):
        list(TokenReader(url, batch_size=1))
