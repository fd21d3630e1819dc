"""Tokenize: tokens/s of `shardsmith tokenize` against the tokenizer's own encode_batch_fast.

Anchor, measured in the same run: the same post texts, already in memory, encoded with the
same tokenizer's ``encode_batch_fast`` (Rust, one thread per core) -- tokenizing and nothing
else. The pipeline reads the posts dataset, renders documents, tokenizes, appends EOS, keys
and shuffles globally, packs to seq_len, writes zstd Parquet and commits. The figure is anchor
time / pipeline time (higher is better; DESIGN.md §7 target: >= 0.8x).

    python benchmarks/tokenize_pipeline.py [--posts 1000000] [--workers 2] [--seq-len 2048]

(Not ``tokenize.py``: a script of that name shadows the standard library's ``tokenize``
module, which numpy imports.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from catalog import CommitRequest, Dataset, new_run_id
from pipelines.tokenize import TokenizeConfig, run
from runners.options import beam_options
from schemas import POSTS, FileEntry
from transforms.samples.x_text import LANG_TEMPLATES, compose_text
from transforms.tokenize import load_tokenizer

_FILES = 8


def make_posts(url: str, n: int) -> list[str]:
    """A posts dataset of ``n`` posts (1 to 4 sample sentences each) in 8 files; the texts."""
    rng = random.Random(0)
    langs = sorted(LANG_TEMPLATES)
    texts = [
        " ".join(compose_text(rng, rng.choice(langs)).text for _ in range(rng.randint(1, 4)))
        for _ in range(n)
    ]
    ds = Dataset.create(url, "posts")
    run_id, entries, t0 = new_run_id(), [], dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    per = -(-n // _FILES)
    os.makedirs(ds.path("data"), exist_ok=True)
    for f in range(_FILES):
        part = range(f * per, min(n, (f + 1) * per))
        cols = {field.name: pa.nulls(len(part), field.type) for field in POSTS.schema}
        cols["post_id"] = pa.array([f"p{i}" for i in part])
        cols["created_at"] = pa.array([t0] * len(part), POSTS.schema.field("created_at").type)
        cols["text"] = pa.array([texts[i] for i in part])
        rel = f"data/{run_id}-{f:05d}.parquet"
        pq.write_table(pa.table(cols, schema=POSTS.schema), ds.path(rel), row_group_size=16384)
        entries.append(FileEntry(rel, len(part), os.path.getsize(ds.path(rel)), "sha256:bench"))
    ds.commit(CommitRequest(run_id=run_id, add=entries))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seq-len", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        texts = make_posts(f"{tmp}/posts", args.posts)
        tok = load_tokenizer().backend()
        start = time.perf_counter()
        encoded = tok.encode_batch_fast(texts, add_special_tokens=False)
        t_anchor = time.perf_counter() - start
        tokens = sum(len(e.ids) for e in encoded)
        del encoded

        config = TokenizeConfig(
            inputs=(f"{tmp}/posts",), dataset=f"{tmp}/tokens", seq_len=args.seq_len
        )
        start = time.perf_counter()
        report = run(config, beam_options("local", args.workers, []))
        t_pipeline = time.perf_counter() - start
    piped = report.stats["tokens"]
    print(
        f"input: {args.posts:,} posts, {tokens:,} tokens (+{args.posts:,} EOS); "
        f"workers: {args.workers}; {report.stats['examples']:,.0f} examples of {args.seq_len}"
    )
    print(f"anchor (encode_batch_fast): {t_anchor:6.2f} s  {tokens / t_anchor:11,.0f} tokens/s")
    print(
        f"tokenize pipeline:          {t_pipeline:6.2f} s  {piped / t_pipeline:11,.0f} tokens/s"
        f"  ratio {t_anchor / t_pipeline:.2f}x (same texts; time against time)"
    )


if __name__ == "__main__":
    main()
