"""``read_ahead`` yields every read in order, never runs more than ``depth`` ahead, and raises a
read's error where its result would have come."""

from __future__ import annotations

import threading

import pytest

from transforms.read_ahead import read_ahead


def test_in_order_and_bounded():
    started: list[int] = []
    consumed = 0
    lock = threading.Lock()

    def read(i: int) -> int:
        with lock:
            started.append(i)
            assert i - consumed <= 3  # at most depth=2 ahead of the one being consumed, plus it
        return i * i

    out = []
    for value in read_ahead(range(50), read, depth=2):
        out.append(value)
        with lock:
            consumed += 1
    assert out == [i * i for i in range(50)]
    assert started == list(range(50))


def test_errors_surface_in_place():
    def read(i: int) -> int:
        if i == 3:
            raise ValueError("bad item 3")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in read_ahead(range(10), read):
            got.append(value)
    assert got == [0, 1, 2]


def test_stopping_early_leaves_no_thread():
    before = threading.active_count()
    items = read_ahead(range(1000), lambda i: i, depth=4)
    assert next(items) == 0
    items.close()
    assert threading.active_count() == before
