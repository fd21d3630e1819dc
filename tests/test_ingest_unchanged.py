"""``ingest posts`` writes exactly the datasets it wrote when tests/data/ingest_golden.json was
recorded (from the code before the throughput work, commit 2b2d029): the same rows (every
column), the same rejects and the same counts, run after run -- a first ingest and a second one
against the committed data (duplicates, edits and compliance deletes of committed posts), with
default options and with ``--dedup-text --scrub-pii``, over the posts samples, the hand-checked
lines, realistic twarc2 lines, the hostile field-by-type corpus and awkward texts.

To record the digests again (only when the output is meant to change; say why in the
commit)::

    python tests/test_ingest_unchanged.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tablegen import read_version
from test_parse_unchanged import hand_checked, hostile_lines, text_lines

from catalog import Dataset
from pipelines.ingest_posts import IngestPostsConfig, run
from runners.options import beam_options
from transforms.samples import PostsSampleConfig, generate_posts_sample
from transforms.samples.firehose import firehose_lines

GOLDEN = Path(__file__).parent / "data" / "ingest_golden.json"
_REPORT_KEYS = (
    "status",
    "operation",
    "records_in",
    "records_written",
    "records_rejected",
    "records_deleted",
    "rejects_by_reason",
    "deduplicated_by_reason",
    "skipped_by_reason",
    "info",
)


def _joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _inputs(tmp: Path) -> dict[str, list[Path]]:
    """name -> the source directory of each run, in order (one dataset per name)."""
    for seed in (0, 1):
        generate_posts_sample(str(tmp / f"sample{seed}"), PostsSampleConfig(posts=400, seed=seed))
    files = {
        "hand_checked/hand_checked.jsonl": hand_checked(),
        "firehose/firehose.jsonl": _joined(firehose_lines(2000)),
        "hostile/hostile.jsonl": _joined(hostile_lines()),
        "hostile/texts.jsonl": _joined(text_lines()),
    }
    for name, data in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    return {
        "samples": [tmp / "sample0", tmp / "sample1"],
        "hand_checked": [tmp / "hand_checked", tmp / "sample0"],
        "firehose": [tmp / "firehose"],
        "hostile": [tmp / "hostile"],
    }


def _sha(values) -> str:
    return hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _relative(rows: list[dict], root: Path) -> list[dict]:
    # Sources sit in a temporary directory: digest their names relative to it.
    for r in rows:
        for key in ("source_uri", "message"):
            if isinstance(r.get(key), str):
                r[key] = r[key].replace(str(root), "<in>")
    return sorted(rows, key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


# Columns added since the digests were first recorded (issue 14: withheld countries, geo):
# ``rows_sha256`` digests every other column, so its recorded values prove those did not change;
# ``new_columns_sha256`` digests these.
NEW_COLUMNS = ["withheld_in_countries", "geo"]
# Language ID (issue 16) fills ``lang`` where the source has none and says so in
# ``lang_source``: ``rows_sha256`` digests those rows with their source's null ``lang`` (so its
# recorded values prove nothing else changed) and ``lang_sha256`` digests both columns.
LANG_COLUMNS = ["lang", "lang_source"]


def _rows(table: pa.Table) -> list[dict]:
    table = table.set_column(
        table.schema.get_field_index("created_at"),
        "created_at",
        table.column("created_at").cast(pa.int64()),
    )
    if "dt" in table.column_names:
        table = table.drop_columns(["dt"])
    rows = table.drop_columns(NEW_COLUMNS).to_pylist()
    for row in rows:
        if row.pop("lang_source") == "detected":
            row["lang"] = None
    return rows


def _new_columns(table: pa.Table, columns: list[str] = NEW_COLUMNS) -> list[dict]:
    rows = table.select(["post_id", *columns]).to_pylist()
    return sorted(rows, key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def _rejects(ds: Dataset, version: int) -> list[dict]:
    out = []
    for entry in ds.manifest(version).rejects:
        with ds.fs.open(ds.path(entry.path), "rb") as f:
            table = pq.read_table(f).drop_columns(["run_id"])
        out.extend(table.to_pylist())
    for r in out:
        r["payload"] = r["payload"].hex()
    return out


def digest(sources: list[Path], dataset: Path, options: dict) -> list[dict]:
    """Ingest each of ``sources`` in turn; after each run, digests of what the dataset holds."""
    out = []
    for src in sources:
        config = IngestPostsConfig(
            sources=(str(src),), dataset=str(dataset), max_reject_rate=1.0, **options
        )
        report = run(config, beam_options("local", 1, ["--direct_running_mode=in_memory"]))
        ds = Dataset.open(str(dataset))
        table = read_version(ds)
        rows = _relative(_rows(table), src.parent)
        rejects = _relative(_rejects(ds, report.version), src.parent)
        out.append(
            {
                "report": {k: report.to_dict()[k] for k in _REPORT_KEYS},
                "rows": len(rows),
                "rows_sha256": _sha(rows),
                "new_columns_sha256": _sha(_new_columns(table)),
                "lang_sha256": _sha(_new_columns(table, LANG_COLUMNS)),
                "rejects": len(rejects),
                "rejects_sha256": _sha(rejects),
            }
        )
    return out


_OPTIONS = {"default": {}, "dedup-scrub": {"dedup_text": True, "scrub_pii": True}}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, list[Path]]:
    return _inputs(tmp_path_factory.mktemp("inputs"))


def _golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    sorted(
        f"{i}/{o}" for i in ("samples", "hand_checked", "firehose", "hostile") for o in _OPTIONS
    ),
)
def test_ingest_output_is_unchanged(sources, tmp_path, name):
    inputs, options = name.split("/")
    assert digest(sources[inputs], tmp_path / "ds", _OPTIONS[options]) == _golden()[name]


def write_golden() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        srcs = _inputs(Path(tmp) / "in")
        golden = {}
        for inputs, paths in srcs.items():
            for options, kwargs in _OPTIONS.items():
                golden[f"{inputs}/{options}"] = digest(
                    paths, Path(tmp) / f"{inputs}-{options}", kwargs
                )
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    write_golden()
