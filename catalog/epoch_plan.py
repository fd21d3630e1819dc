"""``EpochPlan``: which positions of an epoch's stream the ranks of one world size share, and how.

An epoch is one stream of every example in a seeded order (see ``catalog.token_reader``). A plan
is a set of positions of that stream, kept as sorted, disjoint ``[start, stop)`` runs: the whole
stream when an epoch starts, or what was still to be read when a job resumed on another world
size. The plan's positions, in stream order, are cut into one contiguous share per rank, and
each share into batches. Everything here is arithmetic on integers, so every machine computes
the same plan and shares from the same state without talking to the others.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EpochPlan", "Runs", "merge_runs", "parse_runs"]

Runs = tuple[tuple[int, int], ...]


def merge_runs(runs: Iterable[tuple[int, int]]) -> Runs:
    """``runs`` as sorted, disjoint, non-adjacent, non-empty ``(start, stop)`` pairs: one set of
    positions has one form, so a state saved from it is the same whatever history led there."""
    out: list[list[int]] = []
    for start, stop in sorted((int(a), int(b)) for a, b in runs if b > a):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], stop)
        else:
            out.append([start, stop])
    return tuple((a, b) for a, b in out)


def parse_runs(value: Any, total: int) -> Runs:
    """The ``plan`` of a saved state, checked: a list of ``[start, stop)`` pairs inside
    ``[0, total)``, sorted and disjoint (``ValueError`` naming what is wrong otherwise)."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"state: plan is {value!r}, expected a list of [start, stop] pairs")
    runs = []
    for run in value:
        ok = isinstance(run, list | tuple) and len(run) == 2
        if not ok or not all(isinstance(x, int) and not isinstance(x, bool) for x in run):
            raise ValueError(f"state: plan has {run!r}, expected [start, stop] integers")
        start, stop = run
        if not 0 <= start < stop <= total:
            raise ValueError(
                f"state: plan has [{start}, {stop}], expected 0 <= start < stop <= {total} "
                "(the examples of this version)"
            )
        if runs and start < runs[-1][1]:
            raise ValueError(f"state: plan has [{start}, {stop}] overlapping or out of order")
        runs.append((start, stop))
    return merge_runs(runs)


@dataclass(frozen=True)
class EpochPlan:
    """The positions ``runs`` of an epoch's stream shared by ``world_size`` ranks.

    Rank ``r`` reads the contiguous slice ``[r*M//W, (r+1)*M//W)`` of the plan's ``M``
    positions, in batches of ``batch_size``. With ``drop_last`` every rank reads the same number
    of full batches (``(M // W) // batch_size``) so distributed steps stay in lockstep; the
    positions past them are dropped from this plan.
    """

    runs: Runs
    world_size: int
    batch_size: int
    drop_last: bool
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets = [0]
        for start, stop in self.runs:
            offsets.append(offsets[-1] + stop - start)
        object.__setattr__(self, "_offsets", tuple(offsets))

    @property
    def size(self) -> int:
        """Positions in the plan."""
        return self._offsets[-1]

    def share(self, rank: int) -> tuple[int, int]:
        """Rank ``rank``'s ``[first, stop)`` in plan coordinates (0..size)."""
        m, w = self.size, self.world_size
        if self.drop_last:
            each = m // w
            return rank * each, rank * each + each // self.batch_size * self.batch_size
        return rank * m // w, (rank + 1) * m // w

    def batches(self, rank: int) -> int:
        """Batches of rank ``rank``."""
        first, stop = self.share(rank)
        return math.ceil((stop - first) / self.batch_size)

    def lockstep_batches(self) -> int:
        """The most batches every rank has: ranks that step together can all be at any batch up
        to this one (with ``drop_last``, every rank's count)."""
        return min(self.batches(r) for r in range(self.world_size))

    def positions(self, first: int, stop: int) -> list[tuple[int, int]]:
        """The stream positions of plan coordinates ``[first, stop)``, as runs in stream order."""
        out = []
        k = bisect.bisect_right(self._offsets, first) - 1
        while first < stop:
            start = self.runs[k][0]
            base = self._offsets[k]
            take = min(stop, self._offsets[k + 1])
            out.append((start + first - base, start + take - base))
            first = take
            k += 1
        return out

    def unread(self, next_batch: int) -> Runs:
        """The positions the ranks still read once every one of them has read ``next_batch``
        batches (in lockstep): the plan to resume with, on any world size."""
        left: list[tuple[int, int]] = []
        for rank in range(self.world_size):
            first, stop = self.share(rank)
            left += self.positions(min(first + next_batch * self.batch_size, stop), stop)
        return merge_runs(left)

    def to_state(self) -> list[list[int]]:
        return [[a, b] for a, b in self.runs]
