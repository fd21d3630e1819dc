"""Tokenize: `shardsmith tokenize` end to end against the tokenizer's own encode_batch_fast.

Input (as in issue 13): realistic twarc2 lines (``transforms.samples.firehose``, 1.86 posts a
line) ingested with ``shardsmith ingest posts``, and a 16k-vocab byte-level BPE trained on the
texts of 100k lines (kept with the inputs under ``--data``). At each size (default: 100,000
lines, 102k distinct posts, 3.75 M tokens; and 1,000,000 lines, 1.0 M posts), measured in one
run, on the same texts and cores:

* anchor: every post text, already in memory, encoded with the same ``tokenizer.json``'s
  ``encode_batch_fast`` (Rust, one thread per core), 100k texts a call (one call over 1M texts
  is 2.4x slower) -- tokenizing and nothing else; and, for reference, the same work as
  shardsmith's: each text once per call (shardsmith encodes a text once per row group; 41% of
  the post texts of 100k firehose lines repeat);
* shardsmith: ``shardsmith tokenize POSTS --to TOK --tokenizer DIR --seq-len 2048``, the CLI
  from process start to exit with the default runner (reading, rendering, encoding, EOS, the
  global shuffle, packing, zstd Parquet with provenance, the commit); figure = anchor time /
  shardsmith time (DESIGN.md §7 target: >= 0.7x at 100k lines, >= 0.9x at 1 M posts);
* datatrove's ParquetReader -> DocumentTokenizer (shuffle on, same tokenizer.json, EOS, 4
  tasks, as many workers as cores) on the same Parquet files, run in its own virtualenv
  (``make peers`` and ``tokenizers``); skipped with a note when absent. Target: slower than us.

    python benchmarks/tokenize_pipeline.py [--lines 100000 1000000] [--data DIR] [--repeat 1]

(Not ``tokenize.py``: a script of that name shadows the standard library's ``tokenize``
module, which numpy imports.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from _peers import run_datatrove

from catalog import Dataset
from transforms.samples.firehose import write_firehose
from transforms.tokenize.default_tokenizer import SPECIAL_TOKENS

BIN = Path(sys.executable).parent / "shardsmith"
_VOCAB = 16_384
_LINES_A_FILE = 25_000
_ANCHOR_BATCH = 100_000


def _cli(*args: str, checkout: Path | None = None) -> float:
    """Wall seconds of one ``shardsmith`` command, start to exit; ``checkout``: the CLI of
    another checkout of the project (its code first on the path of the CLI and its workers)."""
    command, env = [str(BIN)], None
    if checkout is not None:
        command = [sys.executable, "-m", "runners.cli"]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    done = subprocess.run(
        [*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=checkout
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"shardsmith {' '.join(args)} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds


def posts_dataset(data: Path, lines: int) -> Path:
    """``lines`` twarc2 lines ingested into a posts dataset under ``data`` (reused if there)."""
    posts = data / f"posts-{lines}"
    if (posts / "dataset.json").exists():
        return posts
    src = data / f"firehose-{lines}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(posts, ignore_errors=True)
    write_firehose(str(src), lines=lines, files=max(1, -(-lines // _LINES_A_FILE)))
    seconds = _cli("ingest", "posts", str(src), "--to", str(posts))
    print(f"(ingested {lines:,} lines in {seconds:.1f} s)")
    shutil.rmtree(src)
    return posts


def post_texts(posts: Path) -> list[str]:
    """The non-empty texts of the latest version, in file order."""
    ds = Dataset.open(str(posts))
    texts = []
    for f in sorted(ds.files(), key=lambda f: f.path):
        column = pq.read_table(ds.path(f.path), columns=["text"]).column("text")
        texts += column.filter(pc.greater(pc.utf8_length(column), 0)).to_pylist()
    return texts


def train_tokenizer(out: Path, texts: list[str]) -> Path:
    """A byte-level BPE of ``_VOCAB`` ids trained on ``texts``, as a directory
    ``AutoTokenizer`` loads (``tokenizer.json`` + ``tokenizer_config.json``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B:1")
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": SPECIAL_TOKENS["eos"],
        "pad_token": SPECIAL_TOKENS["pad"],
        "model_max_length": 1 << 20,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def anchor(tokenizer: Path, texts: list[str], distinct: bool = False) -> tuple[float, int]:
    """encode_batch_fast of ``texts``, ``_ANCHOR_BATCH`` at a time: seconds and tokens (EOS
    not counted). One call over a million texts is ~2.4x slower than calls of 100k (every
    ``Encoding`` of the call is alive at once): the anchor is the tokenizer at its best.
    ``distinct``: each text once per batch, the work shardsmith does (once per row group)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer / "tokenizer.json"))
    tokens = 0
    start = time.perf_counter()
    for i in range(0, len(texts), _ANCHOR_BATCH):
        batch = texts[i : i + _ANCHOR_BATCH]
        if distinct:
            batch = list(dict.fromkeys(batch))
        encoded = tok.encode_batch_fast(batch, add_special_tokens=False)
        tokens += sum(map(len, encoded))
    return time.perf_counter() - start, tokens


def shardsmith(
    posts: Path, out: Path, tokenizer: Path, seq_len: int, checkout: Path | None = None
) -> tuple[float, dict]:
    """The CLI end to end: wall seconds and the run report."""
    shutil.rmtree(out, ignore_errors=True)
    seconds = _cli(
        "tokenize", str(posts), "--to", str(out), "--tokenizer", str(tokenizer),
        "--seq-len", str(seq_len), checkout=checkout,
    )  # fmt: skip
    return seconds, Dataset.open(str(out)).manifest().report


def datatrove(posts: Path, tokenizer: Path, out: Path, workers: int) -> float | None:
    """datatrove's ParquetReader -> DocumentTokenizer in its own virtualenv: wall seconds."""
    args = [str(posts / "data"), str(tokenizer / "tokenizer.json"), str(out)]
    return run_datatrove("datatrove_tokenize.py", args, out, workers)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="datatrove's")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per size")
    parser.add_argument("--no-peer", action="store_true", help="skip datatrove")
    parser.add_argument("--data", help="keep the generated inputs here (reused when present)")
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="CHECKOUT",
        help="also time the CLI of this checkout (e.g. `git worktree add /tmp/old REV`)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else tmp / "data"
        data.mkdir(parents=True, exist_ok=True)
        sizes = sorted(args.lines)
        tokenizer = data / f"bpe-{_VOCAB}"
        if not (tokenizer / "tokenizer.json").exists():
            train_tokenizer(tokenizer, post_texts(posts_dataset(data, 100_000)))
        for lines in sizes:
            posts = posts_dataset(data, lines)
            texts = post_texts(posts)
            for _ in range(args.repeat):
                t_anchor, tokens = anchor(tokenizer, texts)
                # For reference: shardsmith encodes a text repeated in a row group once.
                t_distinct, _ = anchor(tokenizer, texts, distinct=True)
                t_ours, report = shardsmith(posts, tmp / "tokens", tokenizer, args.seq_len)
                print(
                    f"{lines:>9,} lines, {len(texts):>9,} posts, {tokens:>11,} tokens: "
                    f"encode_batch_fast {t_anchor:6.2f} s  shardsmith {t_ours:6.2f} s  "
                    f"ratio {t_anchor / t_ours:4.2f}x  "
                    f"({report['stats']['examples']:,.0f} examples of {args.seq_len}; {_load()})"
                )
                print(
                    f"{'':>41}same work (each text once per 100k): encode_batch_fast "
                    f"{t_distinct:6.2f} s, ratio {t_distinct / t_ours:4.2f}x"
                )
                if args.compare_with:
                    t_old, _ = shardsmith(
                        posts, tmp / "tokens", tokenizer, args.seq_len, args.compare_with
                    )
                    print(
                        f"{'':>41}{args.compare_with}: {t_old:6.2f} s  "
                        f"ratio {t_anchor / t_old:4.2f}x"
                    )
                if not args.no_peer:
                    t_peer = datatrove(posts, tokenizer, tmp / "datatrove", args.workers)
                    if t_peer:
                        print(
                            f"{'':>41}datatrove {t_peer:6.2f} s: shardsmith is "
                            f"{t_peer / t_ours:4.2f}x datatrove's speed"
                        )
            del texts


if __name__ == "__main__":
    main()
