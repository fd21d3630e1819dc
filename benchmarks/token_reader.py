"""Reader: ``TokenReader`` batches/s against a plain pyarrow loop over the same row groups, on
local disk and on S3 (moto's server on 127.0.0.1), and with a simulated per-request latency.

Anchor, measured in the same run: for every row group of the same files, ``ParquetFile
.read_row_group`` of the same columns through the same fsspec filesystem, cut into batches of
the same size with ``input_ids`` as an int32 ``[b, seq_len]`` numpy array. The reader does more
per batch (a seeded order of row groups and of the rows inside each, padding, attention mask,
lengths, doc_lens); the figure is reader batches/s / anchor batches/s (DESIGN.md §7 target:
>= 0.9x). Latency: every request of an fsspec wrapper filesystem sleeps ``--latency`` seconds
(default 20 ms, an object store's first-byte time); the figure is the reader's batches/s with
it / without it (target: >= 0.8x with the default ``prefetch``); ``prefetch=0`` and the plain
loop are printed beside it, to show what read-ahead hides. Rates are of the iteration (the
reader is made, and the anchor's footers read, before the clock starts); best of ``--repeat``.

    python benchmarks/token_reader.py [--examples 16384] [--seq-len 2048] [--row-group 1024]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from catalog import CommitRequest, Dataset, TokenReader, new_run_id
from schemas import TOKENS, FileEntry

COLUMNS = ["example_id", "input_ids", "doc_lens", "media"]  # what the reader reads


# -- a filesystem with latency ----------------------------------------------------------------


class _SlowFile:
    """A file of ``target`` whose every read waits ``latency`` seconds first."""

    def __init__(self, f, latency: float):
        self._f, self._latency = f, latency

    def read(self, n: int = -1) -> bytes:
        time.sleep(self._latency)
        return self._f.read(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SlowFileSystem(AbstractFileSystem):
    """``target`` with ``latency`` seconds added to every request (a read of an open file or a
    ``cat_file``), as object storage adds its first-byte time."""

    protocol = "slow"
    cachable = False

    def __init__(self, target: AbstractFileSystem, latency: float):
        super().__init__()
        self.target, self.latency = target, latency

    def cat_file(self, path, start=None, end=None, **kwargs):
        time.sleep(self.latency)
        return self.target.cat_file(path, start=start, end=end, **kwargs)

    def _open(self, path, mode="rb", **kwargs):
        return _SlowFile(self.target.open(path, mode, **kwargs), self.latency)

    def info(self, path, **kwargs):
        time.sleep(self.latency)
        return self.target.info(path, **kwargs)

    def ls(self, path, detail=True, **kwargs):
        time.sleep(self.latency)
        return self.target.ls(path, detail=detail, **kwargs)


def with_latency(ds: Dataset, latency: float) -> Dataset:
    return Dataset(SlowFileSystem(ds.fs, latency), ds.root, ds.info, ds.url)


# -- data -------------------------------------------------------------------------------------


def make_tokens(url: str, args, storage_options: dict | None = None) -> Dataset:
    """A committed tokens dataset: ``--examples`` packed examples of random token ids."""
    rng = np.random.default_rng(0)
    ds = Dataset.create(url, "tokens", storage_options=storage_options)
    ds.fs.makedirs(ds.path("data"), exist_ok=True)
    run_id, entries = new_run_id(), []
    per_file = math.ceil(args.examples / args.files)
    for k in range(args.files):
        n = min(per_file, args.examples - k * per_file)
        ids = rng.integers(3, 50_000, (n, args.seq_len), dtype=np.int32)
        docs = np.full((n, 2), args.seq_len // 2, dtype=np.int32)
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * args.seq_len)
        cols = {field.name: pa.nulls(n, field.type) for field in TOKENS.schema}
        cols["example_id"] = pa.array([f"{k}-{i}" for i in range(n)])
        cols["input_ids"] = pa.ListArray.from_arrays(offsets, pa.array(ids.ravel()))
        cols["doc_lens"] = pa.ListArray.from_arrays(
            pa.array(np.arange(n + 1, dtype=np.int32) * 2), pa.array(docs.ravel())
        )
        table = pa.table(cols, schema=TOKENS.schema)
        rel = f"data/{run_id}-{k:05d}.parquet"
        with ds.fs.open(ds.path(rel), "wb") as f:
            pq.write_table(table, f, row_group_size=args.row_group, compression="zstd")
        entries.append(FileEntry(rel, n, ds.fs.size(ds.path(rel)), "sha256:bench"))
    properties = {
        "seq_len": args.seq_len,
        "pack": "concat",
        "seed": 0,
        "tokenizer": {"name": "bench", "special_tokens": {"eos": 0, "pad": 1}},
    }
    ds.commit(CommitRequest(run_id=run_id, add=entries, properties=properties))
    return ds


# -- the two loops ----------------------------------------------------------------------------


def plain_loop(ds: Dataset, batch_size: int, seq_len: int) -> tuple[float, int]:
    """(seconds, batches) of the anchor: every row group read and cut into batches."""
    files = [
        pq.ParquetFile(ds.fs.open(ds.path(f.path), "rb"))
        for f in sorted(ds.files(), key=lambda f: f.path)
    ]
    start, batches = time.perf_counter(), 0
    for pf in files:
        for group in range(pf.num_row_groups):
            table = pf.read_row_group(group, columns=COLUMNS)
            for lo in range(0, table.num_rows, batch_size):
                ids = table.column("input_ids").slice(lo, batch_size).combine_chunks()
                values = ids.flatten().to_numpy()
                batch = values.reshape(len(ids), seq_len)
                batches += batch.shape[0] > 0
    elapsed = time.perf_counter() - start
    for pf in files:
        pf.close()
    return elapsed, batches


def reader_loop(ds: Dataset, batch_size: int, prefetch: int | None) -> tuple[float, int]:
    """(seconds, batches) of one epoch of the reader."""
    kw = {} if prefetch is None else {"prefetch": prefetch}
    reader = TokenReader(ds, batch_size=batch_size, seed=1, **kw)
    start, batches = time.perf_counter(), 0
    for batch in reader:
        batches += batch["input_ids"].shape[0] > 0
    return time.perf_counter() - start, batches


def rate(fn, repeat: int) -> float:
    """Best batches/s of ``repeat`` runs of ``fn``."""
    return rates([fn], repeat)[0]


def rates(fns, repeat: int) -> list[float]:
    """Best batches/s of each of ``fns`` over ``repeat`` rounds, the runs interleaved so that a
    busy spell of a shared machine does not land on one of them only."""
    best = [0.0] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            seconds, batches = fn()
            best[k] = max(best[k], batches / seconds)
    return best


# -- S3 ---------------------------------------------------------------------------------------


def start_moto() -> tuple[subprocess.Popen, dict] | None:
    """moto's S3 server on 127.0.0.1 and the storage options to reach it, or None with a note."""
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        print(f"S3: skipped ({exc}; pip install 'shardsmith[test]')")
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port}"
    options = {
        "key": "bench",
        "secret": "bench",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    return proc, options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=16384)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--row-group", type=int, default=1024, help="examples per row group")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds per request")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    b, seq = args.batch_size, args.seq_len

    with tempfile.TemporaryDirectory() as tmp:
        local = make_tokens(f"{tmp}/tokens", args)
        size = sum(f.bytes for f in local.files())
        groups = sum(pq.ParquetFile(local.path(f.path)).num_row_groups for f in local.files())
        print(
            f"input: {args.examples:,} examples x {seq} tokens, {args.files} files, "
            f"{groups} row groups, {size / 2**20:.1f} MiB; batch {b}; "
            f"default prefetch {TokenReader.__init__.__kwdefaults__['prefetch']}"
        )
        slow = with_latency(local, args.latency)
        anchor, ours, slow_ours = rates(
            [
                lambda: plain_loop(local, b, seq),
                lambda: reader_loop(local, b, None),
                lambda: reader_loop(slow, b, None),
            ],
            args.repeat,
        )
        print(
            f"local  plain pyarrow loop {anchor:8.1f} batches/s   TokenReader {ours:8.1f}   "
            f"ratio {ours / anchor:.2f}x (target >= 0.9x)"
        )
        ms = args.latency * 1000
        slow_none = rate(lambda: reader_loop(slow, b, 0), 1)
        slow_anchor = rate(lambda: plain_loop(slow, b, seq), 1)
        print(
            f"{ms:.0f} ms/request  TokenReader {slow_ours:8.1f} batches/s = "
            f"{slow_ours / ours:.2f}x its no-latency rate (target >= 0.8x); "
            f"prefetch=0 {slow_none / ours:.2f}x; plain loop {slow_anchor / anchor:.2f}x of its own"
        )

        moto = None if args.no_s3 else start_moto()
        if moto is not None:
            proc, options = moto
            try:
                import boto3

                bucket = f"bench-{uuid.uuid4().hex[:8]}"
                client = options["client_kwargs"]
                boto3.client(
                    "s3",
                    endpoint_url=client["endpoint_url"],
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench",
                    region_name="us-east-1",
                ).create_bucket(Bucket=bucket)
                s3 = make_tokens(f"s3://{bucket}/tokens", args, options)
                s3_anchor, s3_ours = rates(
                    [lambda: plain_loop(s3, b, seq), lambda: reader_loop(s3, b, None)], args.repeat
                )
                print(
                    f"S3     plain pyarrow loop {s3_anchor:8.1f} batches/s   TokenReader "
                    f"{s3_ours:8.1f}   ratio {s3_ours / s3_anchor:.2f}x (target >= 0.9x)"
                )
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
