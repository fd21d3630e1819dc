"""Coverage-guided fuzzing of the post line parser and reader, with atheris (libFuzzer).

The first byte of each input says how the rest is used (its value mod 5):

0. one line for ``parse_line`` (with ``scrub_pii`` when bit 3 is set);
1. a whole uncompressed file for ``parse_source``, which must give exactly what its lines give
   one by one;
2. a gzip member after its 10-byte header, so the fuzzer mutates the deflate data itself;
3. a zstd stream after its magic: frame headers, blocks, skippable frames;
4. structure-aware: a valid post of one of the test forms with one place (chosen by the next
   two bytes) replaced by, or repeated with, the rest as JSON text, so that wrong types reach
   every field without the fuzzer having to invent a whole post first.

Every result must keep the properties that tests/test_hostile_posts.py checks (``check_chunk``,
``check_parsed``): nothing raises; every line becomes a row, a counted skip or a reject with a
reason, file and line; rows conform to the posts schema. Anything else is a crash: libFuzzer
stops and saves the input as ``crash-<sha1>``, which replays with
``python tests/fuzz/fuzz_post_lines.py crash-<sha1>``.

    .venv/bin/pip install atheris
    python tests/fuzz/fuzz_post_lines.py -atheris_runs=200000
    python tests/fuzz/fuzz_post_lines.py CORPUS_DIR -max_total_time=600

Without a corpus directory, the run starts from seeds written to a temporary one (every form of
post in the tests and the lines of tests/data/hand_checked.jsonl, in each of the four uses); an
empty corpus directory is seeded the same way. Other libFuzzer flags pass through (``-jobs``,
``-max_len``...); ``-dict=tests/fuzz/json.dict`` and ``-timeout=20`` (seconds per input: a hang
is a crash too) are added unless given.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tempfile
from pathlib import Path

import atheris
import zstandard

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent.parent), str(_HERE.parent)]  # the repository, tests/

with atheris.instrument_imports(include=["transforms.posts"]):
    from transforms.posts.parse import Chunk, ParseOptions, parse_line
    from transforms.posts.parse_posts import parse_source

from test_hostile_posts import (  # noqa: E402
    FORMS,
    PATHS,
    URI,
    by_lines,
    check_chunk,
    check_parsed,
    mutated,
    render,
    sniffs_compressed,
)

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_LINE = 256  # small, so that over-long lines are common


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    if mode % 5 in (0, 4):
        if mode % 5 == 4:
            form, path = PATHS[int.from_bytes(body[:2], "big") % len(PATHS)]
            body = mutated(FORMS[form], path, ("set", "drop", "dup")[mode // 5 % 3], body[2:])
        chunk = Chunk(URI)
        parse_line(body, 7, chunk, ParseOptions(scrub_pii=bool(mode & 8)))
        check_chunk(chunk, {7})
        assert chunk.counts["records_in"] >= 1, "a line that became no record"
        return
    if mode % 5 == 1:
        options = ParseOptions(scrub_pii=bool(mode & 8))
        source = parse_source(
            io.BytesIO(body), URI, options, max_line_bytes=_MAX_LINE, chunk_records=3
        )
        total = check_parsed(source)
        if not sniffs_compressed(body):
            assert +total == +by_lines(body, options, _MAX_LINE).counts
        return
    # A few bytes of zstd RLE blocks make megabytes of lines: the cap keeps each run quick (the
    # ratio guard, which lets 16 MiB through before it judges, is tested on its own).
    head = _GZIP_HEADER if mode % 5 == 2 else _ZSTD_MAGIC
    source = parse_source(
        io.BytesIO(head + body),
        URI,
        ParseOptions(),
        max_line_bytes=4096,
        chunk_records=100,
        max_decompressed_bytes=256 << 10,
    )
    check_parsed(source)


def seeds() -> list[bytes]:
    lines = [render(doc) for doc in FORMS.values()]
    lines += (_HERE.parent / "data" / "hand_checked.jsonl").read_bytes().splitlines()
    out = []
    for line in lines:
        out += [b"\x00" + line, b"\x01" + line + b"\n" + line[: len(line) // 2]]
        out.append(b"\x02" + gzip.compress(line + b"\n", mtime=0)[len(_GZIP_HEADER) :])
        out.append(b"\x03" + zstandard.ZstdCompressor().compress(line + b"\n")[4:])
    for i in range(0, len(PATHS), 5):  # set, drop and repeat places of the forms
        for mode, value in ((4, b'"x"'), (4, b"[1]"), (9, b""), (14, b"{}")):
            out.append(bytes([mode]) + i.to_bytes(2, "big") + value)
    return out


def _seed(directory: Path) -> None:
    for seed in seeds():
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    flags = [a for a in argv[1:] if a.startswith("-")]
    if not any(f.startswith("-dict=") for f in flags):
        argv.append(f"-dict={_HERE / 'json.dict'}")
    if not any(f.startswith("-timeout=") for f in flags):
        argv.append("-timeout=20")
    paths = [Path(a) for a in argv[1:] if not a.startswith("-")]
    if not paths:
        corpus = Path(tempfile.mkdtemp(prefix="fuzz-post-lines-"))
        _seed(corpus)
        argv.append(str(corpus))
    elif paths[0].is_dir() and not any(paths[0].iterdir()):
        _seed(paths[0])
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
