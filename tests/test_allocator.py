"""``tune_malloc``: a run's processes get glibc's arena and mapping settings, a user's own kept."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from runners.allocator import SETTINGS, tune_malloc

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


@glibc
def test_settings_reach_this_process_and_the_ones_it_starts(monkeypatch):
    for name, _, _ in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's choice wins
    assert tune_malloc() is True
    assert os.environ["MALLOC_ARENA_MAX"] == "4"
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(4 << 20)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == str(8 << 20)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == str(4 << 20)


@glibc
def test_a_value_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "many")
    assert tune_malloc() is False
