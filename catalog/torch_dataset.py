"""``TokenIterableDataset``: a ``TokenReader`` as a PyTorch ``IterableDataset`` (needs the torch extra).

DataLoader workers split the reader's batches round-robin (worker ``w`` of ``k`` takes every
``k``-th batch starting ``w`` after the reader's position), which is the order in which the
DataLoader collects them, so any ``num_workers`` gives the same sequence as ``num_workers=0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:
    raise ImportError(
        f"catalog.torch_dataset needs PyTorch ({exc}): pip install 'shardsmith[torch]'"
    ) from exc

from catalog.token_reader import TokenReader

__all__ = ["TokenIterableDataset"]

_TENSORS = ("input_ids", "attention_mask", "lengths")


def _to_torch(batch: dict[str, Any]) -> dict[str, Any]:
    out = dict(batch)
    for key in _TENSORS:
        out[key] = torch.from_numpy(batch[key])
    return out


class TokenIterableDataset(IterableDataset):
    """The batches of a ``TokenReader`` with ``input_ids``, ``attention_mask`` and ``lengths``
    as torch tensors (int32, uint8, int32); the other fields are kept as the reader gives them.

    Use it with ``batch_size=None`` (the reader batches)::

        reader = TokenReader(url, batch_size=8, rank=rank, world_size=world, seed=1234)
        loader = DataLoader(TokenIterableDataset(reader), batch_size=None, num_workers=4)
        for epoch in range(3):
            reader.set_epoch(epoch)
            for batch in loader:
                ...

    With ``num_workers=0`` iterating moves the reader's position, so ``reader.state_dict()``
    is the resume point. With workers, each worker reads its own copy of the reader (fresh
    each time the loader is iterated, so do not use ``persistent_workers``) and the reader in
    this process does not move: resume by setting ``next_batch`` to the last received
    ``batch["batch_index"] + 1`` in the state passed to ``load_state_dict``. That state resumes
    on any world size and any number of workers when the ranks stepped in lockstep (see
    ``TokenReader.load_state_dict``). Each worker reads ahead ``reader.prefetch`` row groups of
    its own batches.

    Args:
        reader: the ``TokenReader`` to read; iteration starts at its position.
    """

    def __init__(self, reader: TokenReader):
        if not isinstance(reader, TokenReader):
            raise TypeError(f"reader: expected a TokenReader, got {type(reader).__name__}")
        super().__init__()
        self.reader = reader

    def __len__(self) -> int:
        """Batches left in the reader's epoch."""
        return len(self.reader) - self.reader.next_batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        if worker is None:
            for batch in self.reader:
                yield _to_torch(batch)
            return
        # This worker's own copy of the reader (pickled or forked into the worker).
        reader = self.reader
        start = reader.next_batch + worker.id
        try:
            for batch in reader.batches(range(start, len(reader), worker.num_workers)):
                yield _to_torch(batch)
        finally:
            reader.close()
