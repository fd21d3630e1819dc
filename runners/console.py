"""Terminal output: run reports, tables and progress (rich, imported only when printing)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["human_bytes", "print_report", "print_table", "progress"]


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _console():
    import shutil

    from rich.console import Console

    # Not a terminal (a pipe, CI): wide enough that tables never wrap their cells.
    width = None if sys.stdout.isatty() else max(shutil.get_terminal_size((160, 24)).columns, 160)
    return Console(highlight=False, soft_wrap=False, width=width)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A titled table on stdout (plain text when stdout is not a terminal)."""
    from rich.table import Table

    table = Table(show_edge=False)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console = _console()
    console.print(title, style="bold")
    console.print(table)


def print_report(report) -> None:
    """The one-screen end-of-run report: where every record went."""

    def detail(counts):
        return [(f"  {reason}", f"{n:,}") for reason, n in counts.items()]

    status = report.status + (
        f" ({report.operation}, version {report.version})" if report.version else ""
    )
    rows = [
        ("status", status),
        ("records in", f"{report.records_in:,}"),
        ("written", f"{report.records_written:,}"),
        ("rejected", f"{report.records_rejected:,}"),
        *detail(report.rejects_by_reason),
        ("deduplicated", f"{report.records_deduplicated:,}"),
        *detail(report.deduplicated_by_reason),
        ("deleted (compliance)", f"{report.records_deleted:,}"),
        *detail(getattr(report, "deleted_by_reason", {})),
        ("skipped", f"{report.records_skipped:,}"),
        *detail(report.skipped_by_reason),
        ("files written", f"{report.files_written:,} ({human_bytes(report.bytes_written)})"),
        *([("files replaced", f"{report.files_removed:,}")] if report.files_removed else []),
        *((name.replace("_", " "), f"{n:,}") for name, n in report.info.items()),
        *_stats_rows(getattr(report, "stats", {})),
    ]
    print_table(f"run {report.run_id} -> {report.dataset}", ("", ""), rows)
    if report.message:
        print(report.message)


def _stats_rows(stats: dict) -> list[tuple[str, str]]:
    rows = [
        (name.replace("_", " "), f"{int(stats[name]):,}")
        for name in ("documents", "examples", "tokens", "patches", "padding_tokens")
        if name in stats
    ]
    if stats.get("truncated_tokens"):
        rows.append(("truncated tokens", f"{int(stats['truncated_tokens']):,}"))
    pairs = stats.get("adjacent_pairs", 0)
    if pairs:
        # Against a perfect shuffle of the same documents: close means well mixed.
        seen = stats["adjacent_same_source"] / pairs
        ideal = stats["adjacent_same_source_expected"] / pairs
        rows.append(("neighbours from one file", f"{seen:.2%} (random order: {ideal:.2%})"))
    return rows


@contextmanager
def progress(description: str, total: int | None) -> Iterator:
    """A progress bar on stderr while the block runs; yields ``advance(label)``.

    Off when stderr is not a terminal (logs and CI stay clean).
    """
    if not sys.stderr.isatty():
        yield lambda label=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[label]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total, label="")

        def advance(label: str | None = None) -> None:
            bar.update(task, advance=1, label=label or "")

        yield advance
