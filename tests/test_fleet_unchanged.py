"""``ingest fleet`` writes exactly the clips it wrote when tests/data/fleet_golden.json was
recorded (from the code before the throughput work, commit 1d480e1): the same rows (every
column, the JPEG bytes included), the same rejects and the same counts -- over both sample
layouts with broken inputs, 30 fps footage with B-frames at the default options and
``--keyframes-only``, other codecs and containers (MPEG-4 in AVI, HEVC in Matroska), variable
frame rate and a file that breaks off half-way.

To record the digests again (only when the output is meant to change; say why in the
commit)::

    python tests/test_fleet_unchanged.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tablegen import read_version
from videogen import encode_clip

from catalog import Dataset
from pipelines.ingest_fleet import IngestFleetConfig, run
from runners.options import beam_options
from transforms.samples import FleetSampleConfig, generate_fleet_sample

GOLDEN = Path(__file__).parent / "data" / "fleet_golden.json"
_REPORT_KEYS = (
    "status",
    "records_in",
    "records_written",
    "records_rejected",
    "rejects_by_reason",
    "deduplicated_by_reason",
)


def _codecs(d: Path) -> None:
    """A generic session of other codecs, variable frame rate and a file cut short."""
    d = d / "veh-9" / "2026-11-20T10-00-00Z"
    d.mkdir(parents=True)
    encode_clip(d / "front.avi", list(range(0, 4000, 100)), fmt="avi", codec="mpeg4")
    encode_clip(
        d / "rear.mkv", list(range(40, 3900, 100)), fmt="matroska", codec="libx265", camera="rear"
    )
    vfr = sorted({int(t) for t in np.cumsum(np.random.default_rng(3).integers(30, 140, 60))})
    encode_clip(d / "left.mp4", [t for t in vfr if t < 3800], camera="left")
    encode_clip(
        d / "right.mp4", list(range(0, 4000, 50)), camera="right", fps=20, blur=True, faststart=True
    )
    data = (d / "right.mp4").read_bytes()
    (d / "right.mp4").write_bytes(data[: len(data) * 2 // 3])


def _inputs(tmp: Path) -> dict[str, Path]:
    samples = {
        # Recorded before the sample wrote Tesla SEI: the same inputs, without it.
        "layouts": FleetSampleConfig(
            vehicles=2,
            sessions=2,
            events=2,
            segments=2,
            duration_s=5.0,
            broken=True,
            sei=False,
            seed=7,
        ),
        # Issue 19: TeslaCam sessions with SEI telemetry (saved, sentry without, recent).
        "sei": FleetSampleConfig(events=3, duration_s=4.0, cameras=2, layout="teslacam", seed=9),
        "30fps": FleetSampleConfig(
            vehicles=1, sessions=1, events=0, duration_s=12.0, fps=30.0, layout="generic", seed=8
        ),
    }
    out = {}
    for name, cfg in samples.items():
        generate_fleet_sample(str(tmp / name), cfg)
        out[name] = tmp / name
    _codecs(tmp / "codecs")
    out["codecs"] = tmp / "codecs"
    return out


# name -> (input, IngestFleetConfig options)
_RUNS = {
    "layouts/window2": ("layouts", {"window_s": 2.0, "fps": 2.0, "size": (160, 120)}),
    "layouts/keyframes": ("layouts", {"keyframes_only": True, "jpeg_quality": 75}),
    "30fps/default": ("30fps", {}),
    "30fps/keyframes": ("30fps", {"keyframes_only": True}),
    "30fps/fps5-q60-odd-size": ("30fps", {"fps": 5.0, "jpeg_quality": 60, "size": (250, 130)}),
    "codecs/window2": ("codecs", {"window_s": 2.0, "fps": 3.0, "size": (96, 64)}),
    "sei/window2": (
        "sei",
        {"window_s": 2.0, "size": (64, 48), "tag_thresholds": ("lane_change=4",)},
    ),
}


# Columns added since the digests were first recorded (issue 19: Tesla SEI): ``rows_sha256``
# digests every other column, so its recorded values prove those did not change;
# ``new_columns_sha256`` digests these, by clip id.
NEW_COLUMNS = ["telemetry_ext", "tags"]


def _sha(values) -> str:
    return hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _rows(table: pa.Table) -> list[dict]:
    table = table.set_column(
        table.schema.get_field_index("start_time"),
        "start_time",
        table.column("start_time").cast(pa.int64()),
    )
    rows = table.to_pylist()
    for row in rows:
        for cam in row["cameras"]:
            cam["frames"] = [hashlib.sha256(f).hexdigest() for f in cam["frames"]]
    return sorted(rows, key=lambda r: r["clip_id"])


def _rejects(ds: Dataset, version: int) -> list[dict]:
    out = []
    for entry in ds.manifest(version).rejects:
        with ds.fs.open(ds.path(entry.path), "rb") as f:
            out.extend(pq.read_table(f).drop_columns(["run_id"]).to_pylist())
    for r in out:
        if isinstance(r.get("payload"), bytes):
            r["payload"] = r["payload"].hex()
    return out


def _relative(rows: list, root: Path) -> list:
    # Sources sit in a temporary directory: digest their names relative to it.
    text = orjson.dumps(rows).decode().replace(str(root), "<in>")
    return sorted(json.loads(text), key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def digest(source: Path, dataset: Path, options: dict) -> dict:
    """Ingest ``source`` once; digests of the rows, the rejects and the report."""
    config = IngestFleetConfig(
        source=str(source), dataset=str(dataset), max_reject_rate=1.0, **options
    )
    report = run(config, beam_options("local", 1, ["--direct_running_mode=in_memory"]))
    ds = Dataset.open(str(dataset))
    table = read_version(ds)
    new = sorted(table.select(["clip_id", *NEW_COLUMNS]).to_pylist(), key=lambda r: r["clip_id"])
    rows = _relative(_rows(table.drop_columns(NEW_COLUMNS)), source)
    rejects = _relative(_rejects(ds, report.version), source)
    return {
        "report": {k: report.to_dict()[k] for k in _REPORT_KEYS},
        "rows": len(rows),
        "rows_sha256": _sha(rows),
        "new_columns_sha256": _sha(new),
        "frames": sum(len(c["frames"]) for r in rows for c in r["cameras"]),
        "rejects": len(rejects),
        "rejects_sha256": _sha(rejects),
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    return _inputs(tmp_path_factory.mktemp("inputs"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_RUNS))
def test_fleet_output_is_unchanged(sources, tmp_path, name):
    inputs, options = _RUNS[name]
    golden = json.loads(GOLDEN.read_text())
    assert digest(sources[inputs], tmp_path / "ds", options) == golden[name]


def write_golden() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        srcs = _inputs(Path(tmp) / "in")
        golden = {
            name: digest(srcs[inputs], Path(tmp) / name.replace("/", "-"), options)
            for name, (inputs, options) in _RUNS.items()
        }
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    write_golden()
