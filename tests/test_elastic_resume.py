"""Elastic resume: a state saved by ranks in lockstep resumes on any world size, batch size and
number of DataLoader workers; the new ranks read exactly what the old ones had not, once each,
in the epoch's order; a state that cannot be resumed that way is refused, saying why."""

from __future__ import annotations

import itertools
import json

import pytest
from test_token_reader import N, make_tokens, number, stream

from catalog import TokenReader

EPOCH = dict(seed=13, epoch=1)
# 3 workers on a 2-core machine is the point of the test, not a mistake.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def tokens_url(tmp_path_factory) -> str:
    url = str(tmp_path_factory.mktemp("elastic") / "tokens")
    make_tokens(url)  # 50 examples in 14 row groups of 3 files
    return url


def _read(reader: TokenReader, workers: int, steps: int | None = None) -> tuple[list[int], dict]:
    """The example numbers of the next ``steps`` batches (all when None) through a DataLoader
    with ``workers`` workers, and the state to resume after them, as a training loop saves it."""
    from torch.utils.data import DataLoader

    from catalog.torch_dataset import TokenIterableDataset

    start = reader.next_batch
    numbers, last = [], start - 1
    loader = DataLoader(TokenIterableDataset(reader), batch_size=None, num_workers=workers)
    for batch in loader:
        assert batch["batch_index"] == last + 1
        numbers += [number(row.numpy()) for row in batch["input_ids"]]
        last = batch["batch_index"]
        if steps is not None and last + 1 - start == steps:
            break
    state = json.loads(json.dumps(reader.state_dict()))  # as stored in a checkpoint
    if workers == 0:
        assert state["next_batch"] == last + 1  # the reader itself moved
    state["next_batch"] = last + 1
    return numbers, state


@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.parametrize(
    "old_world, steps, new_world, new_batch",
    [(4, 2, 3, 4), (4, 2, 1, 5), (1, 5, 8, 2)],
    ids=["4to3", "4to1", "1to8"],
)
def test_new_ranks_read_what_the_old_ones_had_not(
    tokens_url, old_world, steps, new_world, new_batch, workers
):
    pytest.importorskip("torch", reason="DataLoader workers need the torch extra")
    order = stream(TokenReader(tokens_url, batch_size=7, **EPOCH))  # the epoch's order
    # drop_last keeps several ranks in lockstep; one rank is always in step with itself.
    old = dict(batch_size=3, world_size=old_world, drop_last=old_world > 1, **EPOCH)
    before, owed, states = [], [], []
    for rank in range(old_world):
        whole = stream(TokenReader(tokens_url, rank=rank, **old))  # an uninterrupted epoch
        numbers, state = _read(TokenReader(tokens_url, rank=rank, **old), workers, steps)
        assert numbers == whole[: steps * 3] and state["next_batch"] == steps
        before += numbers
        owed += whole[steps * 3 :]
        states.append(state)
    # What the old ranks never read is accounted for: drop_last's remainder (50 % 4 = 2) only.
    dropped = set(range(N)) - set(before) - set(owed)
    assert len(dropped) == (N % old_world if old_world > 1 else 0)

    new = dict(batch_size=new_batch, world_size=new_world, **EPOCH)
    parts = []
    for rank in range(new_world):
        reader = TokenReader(tokens_url, rank=rank, **new)
        # Any old rank's state will do: in lockstep they say the same thing.
        reader.load_state_dict(states[(rank + 1) % old_world])
        assert reader.next_batch == 0
        numbers, _ = _read(reader, workers)
        assert len(numbers) <= len(reader) * new_batch
        parts.append(numbers)
    after = list(itertools.chain(*parts))
    # Exactly the examples the old ranks had still to read, once each, in the epoch's order:
    # the new ranks' contiguous shares, one after the other, are that order with the rest left out.
    assert after == [n for n in order if n in set(owed)]
    assert len(after) == len(set(after)) and not set(after) & set(before)
    assert sorted(before + after + list(dropped)) == list(range(N))
    sizes = {len(p) for p in parts}
    assert max(sizes) - min(sizes) <= 1  # an even split
    # Deterministic: the same state gives the same batches again.
    again = TokenReader(tokens_url, rank=new_world - 1, **new)
    again.load_state_dict(states[0])
    assert stream(again) == parts[-1]


def test_resuming_twice_depends_on_the_state_not_the_history(tokens_url):
    order = stream(TokenReader(tokens_url, batch_size=7, **EPOCH))
    four = dict(batch_size=3, world_size=4, drop_last=True, **EPOCH)
    first = TokenReader(tokens_url, rank=0, **four)
    read = list(itertools.islice(stream_batches(first), 1))  # rank 0: one batch
    state = first.state_dict()
    before = [n for r in range(4) for n in stream(TokenReader(tokens_url, rank=r, **four))[:3]]
    assert read[0] == before[:3]

    three = dict(batch_size=2, world_size=3, drop_last=True, **EPOCH)
    middle, owed, states = [], [], []
    for rank in range(3):
        whole = TokenReader(tokens_url, rank=rank, **three)
        whole.load_state_dict(state)
        owed += stream(whole)[4:]  # what rank would read after its first 2 batches
        reader = TokenReader(tokens_url, rank=rank, **three)
        reader.load_state_dict(state)
        middle += list(itertools.chain(*itertools.islice(stream_batches(reader), 2)))
        states.append(json.loads(json.dumps(reader.state_dict())))
    assert states[0]["plan"] == states[2]["plan"] != state["plan"]
    assert {s["next_batch"] for s in states} == {2}

    two = dict(batch_size=4, world_size=2, **EPOCH)
    last = []
    for rank in range(2):
        reader = TokenReader(tokens_url, rank=rank, **two)
        reader.load_state_dict(states[rank])
        last += stream(reader)
    every = before + middle + last
    assert len(every) == len(set(every))
    # Never read: drop_last's remainder of 4 ranks (50 % 4), and of 3 ranks over the 36 left
    # (12 each, 6 batches of 2: none).
    assert len(set(range(N)) - set(every)) == 2
    assert last == [n for n in order if n in set(owed)]


def stream_batches(reader: TokenReader):
    for batch in reader:
        yield [number(row) for row in batch["input_ids"]]


def test_lockstep_on_the_same_world_size_resumes_any_rank_exactly(tokens_url):
    kw = dict(batch_size=3, world_size=4, drop_last=True, **EPOCH)
    reader = TokenReader(tokens_url, rank=0, **kw)
    list(itertools.islice(reader, 2))
    state = reader.state_dict()
    own = TokenReader(tokens_url, rank=3, **kw)
    list(itertools.islice(own, 2))
    from_rank0 = TokenReader(tokens_url, rank=3, **kw)
    from_rank0.load_state_dict(state)
    assert from_rank0.next_batch == 2  # the same plan: batch numbers go on
    assert [b["batch_index"] for b in from_rank0] == [2, 3]
    from_rank0.load_state_dict(state)
    assert stream(from_rank0) == stream(own)


def test_a_state_out_of_lockstep_is_refused(tokens_url):
    # Without drop_last 3 ranks get 16, 17, 17 examples: 4, 5 and 5 batches of 4.
    kw = dict(batch_size=4, world_size=3, **EPOCH)
    whole = stream(TokenReader(tokens_url, rank=1, **kw))
    reader = TokenReader(tokens_url, rank=1, **kw)
    assert len(reader) == 5 and len(TokenReader(tokens_url, rank=0, **kw)) == 4
    head = stream(reader)  # rank 1 read its 5th batch, which rank 0 does not have
    state = reader.state_dict()
    for other in [dict(rank=0, world_size=2), dict(rank=0, world_size=3)]:
        resumed = TokenReader(tokens_url, **{**kw, **other})
        with pytest.raises(ValueError) as err:
            resumed.load_state_dict(state)
        message = str(err.value)
        assert "rank 1 of 3 is at batch 5, past the 4 batches of rank 0" in message
        assert "not in lockstep" in message and "save states with drop_last=True" in message
        assert "\n" not in message
    # Its own rank on its own world size resumes it exactly, as always.
    own = TokenReader(tokens_url, rank=1, **kw)
    own.load_state_dict(state)
    assert head == whole and stream(own) == []

    # At batch 4 every rank can have been there: accepted, and the rest is each long rank's last.
    state["next_batch"] = 4
    parts = []
    for rank in range(2):
        resumed = TokenReader(tokens_url, rank=rank, batch_size=1, world_size=2, **EPOCH)
        resumed.load_state_dict(state)
        parts += stream(resumed)
    last = [stream(TokenReader(tokens_url, rank=r, **kw))[16:] for r in (1, 2)]
    assert parts == last[0] + last[1] and len(parts) == 2
