"""``tokenize`` writes exactly the bytes it wrote when tests/data/tokenize_golden.json was
recorded (from the code before the tokenize throughput work, commit 1d480e1): the SHA-256 of
every data file of the ``tokens`` version, and its counts, for posts (concat and pad, several
shards, seeds and lengths), reply threads, and posts with clips (patches).

Inputs and outputs live on ``memory://`` under fixed names, so the dataset labels inside the
examples (``sources``) are the same on every machine; the run is in this process. The
determinism tests of test_tokenize.py show the other runners write the same bytes.

To record the digests again (only when the output is meant to change; say why in the
commit)::

    python tests/test_tokenize_unchanged.py
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tablegen import clips_table, posts_table

from catalog import CommitRequest, Dataset, new_run_id
from pipelines.tokenize import TokenizeConfig, run
from runners.options import beam_options
from schemas import FileEntry
from transforms.samples.x_text import LANG_TEMPLATES, compose_text

GOLDEN = Path(__file__).parent / "data" / "tokenize_golden.json"
ROOT = "memory://tokenize-golden"
CASES = {
    "posts-concat": dict(inputs=("posts",), seq_len=64, shards=3),
    "posts-concat-2048": dict(inputs=("posts",), seq_len=2048, shards=2, seed=11),
    "posts-one-shard": dict(inputs=("posts",), seq_len=100, shards=1, seed=-5),
    "posts-pad": dict(inputs=("posts",), seq_len=32, shards=4, pack="pad"),
    "threads": dict(inputs=("posts",), seq_len=48, shards=2, threads=True),
    "posts-and-clips": dict(inputs=("posts", "clips"), seq_len=128, shards=3),
}
_REPORT_KEYS = ("records_in", "records_written", "skipped_by_reason")


def _texts(n: int) -> list[str]:
    rng = random.Random(13)
    langs = sorted(LANG_TEMPLATES)
    out = []
    for i in range(n):
        if i % 97 == 5:
            out.append("")  # skipped: nothing to say
        elif i % 89 == 3:
            out.append("says <|endoftext|> and <|patch|> as text")
        else:
            k = rng.randint(1, 6)
            out.append(" ".join(compose_text(rng, rng.choice(langs)).text for _ in range(k)))
    return out


def _posts(n: int, prefix: str, texts: list[str]) -> pa.Table:
    table = posts_table(n, prefix)
    # Threads: every fifth post answers one of the ten conversations of its file.
    conv = [f"{prefix}{(i // 5) % 10}" if i % 5 else None for i in range(n)]
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))
    idx = table.schema.get_field_index("conversation_id")
    return table.set_column(idx, "conversation_id", pa.array(conv, pa.string()))


def _jpeg(seed: int, w: int, h: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _clips(n: int) -> pa.Table:
    rows = clips_table(n, dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)).to_pylist()
    for i, row in enumerate(rows):
        for c, cam in enumerate(row["cameras"]):
            cam["frames"] = [_jpeg(100 * i + 10 * c + k, 40 + 8 * k, 24) for k in range(3)]
        reason = "user_interaction_honk" if i % 3 else None
        row["event"] = {"reason": reason, "city": None, "lat": None, "lon": None}
    return pa.Table.from_pylist(rows, schema=clips_table(0).schema)


def _commit(url: str, kind: str, tables: list[pa.Table], row_group: int) -> None:
    ds = Dataset.create(url, kind)
    run_id = new_run_id()
    entries = []
    for i, table in enumerate(tables):
        rel = f"data/{run_id}-{i:05d}.parquet"
        ds.fs.makedirs(ds.path("data"), exist_ok=True)
        with ds.fs.open(ds.path(rel), "wb") as f:
            pq.write_table(table, f, row_group_size=row_group)
        entries.append(FileEntry(rel, table.num_rows, ds.fs.size(ds.path(rel)), "sha256:test"))
    ds.commit(CommitRequest(run_id=run_id, add=entries))


def _make_inputs() -> None:
    fs = fsspec.filesystem("memory")
    if fs.exists(ROOT):
        fs.rm(ROOT, recursive=True)
    texts = _texts(3000)
    tables = [_posts(1000, p, texts[k * 1000 : (k + 1) * 1000]) for k, p in enumerate("abc")]
    _commit(f"{ROOT}/posts", "posts", tables, row_group=300)
    _commit(f"{ROOT}/clips", "clips", [_clips(5), _clips(2)], row_group=3)


def _digest(name: str, options=None) -> dict:
    case = dict(CASES[name])
    out = f"{ROOT}/out-{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(out):
        fs.rm(out, recursive=True)
    inputs = tuple(f"{ROOT}/{i}" for i in case.pop("inputs"))
    config = TokenizeConfig(inputs=inputs, dataset=out, **case)
    report = run(config, options or beam_options("local", 1, ["--direct_running_mode=in_memory"]))
    ds = Dataset.open(out)
    files = sorted(ds.files(), key=lambda f: f.path)
    return {
        "files": [hashlib.sha256(ds.fs.cat_file(ds.path(f.path))).hexdigest() for f in files],
        "stats": {k: report.stats[k] for k in ("tokens", "examples", "documents")},
        "report": {k: report.to_dict()[k] for k in _REPORT_KEYS},
    }


@pytest.fixture(scope="module")
def golden():
    _make_inputs()
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_tokens_are_the_recorded_bytes(golden, name):
    assert _digest(name) == golden[name]


def _record() -> None:
    _make_inputs()
    GOLDEN.write_text(json.dumps({n: _digest(n) for n in sorted(CASES)}, indent=1) + "\n")
    print(f"recorded {GOLDEN}")


if __name__ == "__main__":
    _record()
