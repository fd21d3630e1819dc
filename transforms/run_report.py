"""The run report: counts of every record a run read, and where each one went (DESIGN.md §2).

Pipelines emit *tallies* (plain dicts of counts) as a side stream; ``SumTallies`` adds them up and
the commit step turns the sum plus the files written into a ``RunReport``. The identity

    records_in == written + rejected + deduplicated + deleted + skipped

is checked before anything is committed: a run that cannot account for a record fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import apache_beam as beam

__all__ = ["NothingLostError", "RunReport", "SumTallies", "tally"]

# Keys of a tally. "<group>:<reason>" keys count by reason: skipped payloads that are not
# records, deduplicated records, records deleted by compliance (by the event that removed them),
# and "info" counts that are reported but not part of the identity.
_PLAIN_KEYS = ("records_in", "written", "deleted", "carried")
_GROUPS = ("skipped:", "deduplicated:", "deleted:", "info:")


class NothingLostError(RuntimeError):
    """A run's counts do not add up: some record is neither written, rejected, deduplicated,
    deleted nor skipped. This is a bug in the pipeline, never in the input."""


def tally(
    *,
    records_in: int = 0,
    written: int | None = None,
    deleted: int = 0,
    carried: int = 0,
    deduplicated: Mapping[str, int] | None = None,
    skipped: Mapping[str, int] | None = None,
    info: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """A tally for the run report.

    Args:
        records_in: records read from the sources.
        written: records written, for pipelines whose rows are not records (tokens: documents
            packed into examples); by default the rows of the data files written count.
        deleted: records removed by compliance deletes.
        carried: rows copied unchanged from files a run rewrites (they are written but were not
            read from the sources, so they are subtracted from ``written``).
        deduplicated: records dropped as duplicates, by reason (``post_id``, ``text``, ...).
        skipped: payloads that are not records, or records filtered out by an option, by reason.
        info: other counts worth reporting (not part of the identity), by name.
    """
    out = {"records_in": records_in, "deleted": deleted, "carried": carried}
    if written is not None:
        out["written"] = written
    for group, counts in (("deduplicated:", deduplicated), ("skipped:", skipped), ("info:", info)):
        for reason, n in (counts or {}).items():
            out[group + reason] = n
    return {k: v for k, v in out.items() if v}


class SumTallies(beam.CombineFn):
    """Adds tallies up; the result of an empty input is an empty dict."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, element: Mapping[str, int]) -> Counter:
        for key, value in element.items():
            if key not in _PLAIN_KEYS and not key.startswith(_GROUPS):
                raise ValueError(
                    f"tally key {key!r}: expected one of {_PLAIN_KEYS} or {', '.join(_GROUPS)}*"
                )
            acc[key] += int(value)
        return acc

    def merge_accumulators(self, accs: Iterable[Counter]) -> Counter:
        total = Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc: Counter) -> dict[str, int]:
        return dict(acc)


def by_reason(tallies: Mapping[str, int], group: str) -> dict[str, int]:
    """The ``group:reason`` counts of a summed tally, as ``{reason: count}``, sorted."""
    prefix = group + ":"
    return {k[len(prefix) :]: v for k, v in sorted(tallies.items()) if k.startswith(prefix)}


@dataclass
class RunReport:
    """Where every record of one run went. Stored in the manifest as ``report``."""

    run_id: str
    dataset: str
    kind: str
    status: str = "running"  # committed | nothing-new | failed
    version: int | None = None
    operation: str = "append"
    records_in: int = 0
    records_written: int = 0
    records_rejected: int = 0
    records_deleted: int = 0
    deleted_by_reason: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    deduplicated_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    info: dict[str, int] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    files_written: int = 0
    bytes_written: int = 0
    files_removed: int = 0
    reject_files: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def records_deduplicated(self) -> int:
        return sum(self.deduplicated_by_reason.values())

    @property
    def records_skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def reject_rate(self) -> float:
        """Rejected records as a fraction of the records read (0 when nothing was read)."""
        return self.records_rejected / self.records_in if self.records_in else 0.0

    @property
    def accounted(self) -> int:
        return (
            self.records_written
            + self.records_rejected
            + self.records_deduplicated
            + self.records_deleted
            + self.records_skipped
        )

    def check_nothing_lost(self) -> None:
        if self.records_in != self.accounted:
            raise NothingLostError(
                f"run {self.run_id}: read {self.records_in} records but accounted for "
                f"{self.accounted} (written {self.records_written}, rejected "
                f"{self.records_rejected}, deduplicated {self.records_deduplicated}, deleted "
                f"{self.records_deleted}, skipped {self.records_skipped})"
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["records_deduplicated"] = self.records_deduplicated
        out["records_skipped"] = self.records_skipped
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> RunReport:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in obj.items() if k in names})
