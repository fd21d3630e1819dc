"""``--dedup-near``: MinHash signatures, LSH parameters, which posts go, and ingest runs that
remove near-duplicates within a run, against committed posts, and not after a compliance delete."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tablegen import posts_table, read_version
from test_compliance_events import post_event

from catalog import Dataset
from catalog.gc import collect_garbage
from catalog.staging import read_staged
from catalog.storage import open_url
from pipelines.ingest_posts import IngestPostsConfig, run
from runners.options import beam_options
from schemas import MINHASH_SCHEMA, NEAR_DUPLICATES_SCHEMA
from schemas.errors import UserError
from schemas.near_dup import SIGNATURE_TYPE
from transforms.posts import minhash
from transforms.posts.minhash import (
    SIGNATURE_SIZE,
    band_keys,
    candidate_probability,
    estimated_jaccard,
    lsh_params,
    signature_keys,
    signatures,
)
from transforms.posts.near_dup import (
    SignatureCache,
    band_rows,
    candidate_pairs,
    choose_removals,
    copy_rows,
    expand_removals,
    low_bits,
    member_rows,
    members_of,
    post_keys,
    removed_keys,
    signature_column,
    signature_matrix,
    split_copies,
)
from transforms.posts.parse_posts import ParsedChunk
from transforms.posts.rows import bucket_positions
from transforms.posts.stage_posts import read_signatures, stage_chunk
from transforms.posts.text import dedup_form, dedup_hash

BIN = Path(sys.executable).parent / "shardsmith"


def _shingles(text: str) -> set[str]:
    f = dedup_form(text)
    if len(f) < 5:
        return {f} if f else set()
    return {f[i : i + 5] for i in range(len(f) - 4)}


def jaccard(a: str, b: str) -> float:
    """Brute force: what the signatures estimate."""
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def _words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 8))) for _ in range(n)]


def _text(rng: random.Random, vocab: list[str], n: int = 25) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def _replace(rng: random.Random, vocab: list[str], text: str, n: int) -> str:
    """``text`` with ``n`` of its words replaced."""
    words = text.split()
    for _ in range(n):
        words[rng.randrange(len(words))] = rng.choice(vocab)
    return " ".join(words)


def test_signatures_estimate_jaccard_and_do_not_depend_on_the_batch():
    rng = random.Random(7)
    vocab = _words(rng, 3000)
    pairs = []
    for _ in range(300):
        words = _text(rng, vocab).split()
        other = list(words)
        for _ in range(rng.randint(0, 12)):  # replace some words: Jaccard from 1 down to ~0.2
            other[rng.randrange(len(other))] = rng.choice(vocab)
        pairs.append((" ".join(words), " ".join(other)))
    sig = signatures([t for pair in pairs for t in pair])
    assert sig.shape == (600, SIGNATURE_SIZE) and sig.dtype == np.uint32
    est = estimated_jaccard(sig[0::2], sig[1::2])
    true = np.array([jaccard(a, b) for a, b in pairs])
    assert true.min() < 0.4 and true.max() == 1.0
    # unbiased, and no noisier than the binomial error of SIGNATURE_SIZE independent hashes
    assert abs((est - true).mean()) < 0.01
    assert ((est - true) ** 2).mean() < 1.3 * (true * (1 - true) / SIGNATURE_SIZE).mean()
    # a text's signature is the same alone, in another batch, in small chunks
    alone = signatures([pairs[5][1]])
    assert (alone[0] == sig[11]).all()
    assert (signatures([t for p in pairs for t in p], chunk=64) == sig).all()


def _reference_signature(text: str | None) -> list[int]:
    """The scheme of ``minhash`` (oph64-v1) for one text, in plain Python integers."""
    mask = 2**64 - 1
    codes = [ord(c) + 1 for c in (dedup_form(text) if text else "")]
    windows = [codes[i : i + 5] for i in range(len(codes) - 4)] or ([codes] if codes else [])
    bins: dict[int, int] = {}
    for window in windows:
        h = 0
        for c in window:
            h = ((h ^ c) * int(minhash._POLY)) & mask
        h ^= h >> 30
        h = (h * int(minhash._MIX1)) & mask
        h ^= h >> 27
        h = (h * int(minhash._MIX2)) & mask
        h ^= h >> 31
        value = min((h >> 26) & 0xFFFFFFFF, 0xFFFFFFFE)
        bins[h >> 58] = min(bins.get(h >> 58, value), value)
    if not bins:
        return [0xFFFFFFFF] * SIGNATURE_SIZE
    # an empty bin copies the first filled one in its own probe order
    return [
        bins[j] if j in bins else next(bins[b] for b in minhash._PROBE[j] if b in bins)
        for j in range(SIGNATURE_SIZE)
    ]


def test_signatures_are_the_scheme_computed_one_text_at_a_time():
    # Committed signatures are reused by later runs: the vectorized code must keep computing
    # exactly this, whatever the chunking, the mix of lengths or the characters.
    rng = random.Random(12)
    vocab = [*_words(rng, 200), "héllo", "日本語", "🙂🙂", "RT @x:", "https://t.co/ab"]
    texts = [_text(rng, vocab, rng.randint(1, 30)) for _ in range(150)]
    texts += ["", None, "a", "abcd", "abcde", "  ", "ÅNGSTRÖM", "😀"]
    rng.shuffle(texts)
    expected = np.array([_reference_signature(t) for t in texts], np.uint32)
    for chunk in (1, 50, 1 << 15):
        np.testing.assert_array_equal(signatures(texts, chunk=chunk), expected)


def test_short_texts_fill_every_bin_and_equal_texts_equal_signatures():
    # One-permutation hashing leaves most bins of a short text empty; densification fills
    # them from the text's own bins, so no value is the "empty" mark and equal sets agree.
    texts = ["ok", "okay!", "a short one", "a short one", "", None, "x" * 40]
    sig = signatures(texts)
    assert (sig[[0, 1, 2, 3, 6]] != 0xFFFFFFFF).all()
    assert (sig[4] == 0xFFFFFFFF).all() and (sig[5] == 0xFFFFFFFF).all()
    assert len(set(sig[0].tolist())) == 1  # one shingle: every bin holds it
    assert (sig[2] == sig[3]).all()
    assert len(set(sig[6].tolist())) == 1  # "xxxxx" is the only shingle


def test_signatures_are_the_same_in_another_process():
    texts = ["Traffic on the bridge is wild this morning", "ok", "naïve café ☕ déjà vu"]
    code = (
        "import sys, orjson\n"
        "from transforms.posts.minhash import signatures\n"
        "sys.stdout.buffer.write(orjson.dumps(signatures(orjson.loads(sys.argv[1])).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, orjson.dumps(texts).decode()],
        capture_output=True,
        check=True,
        env={**__import__("os").environ, "PYTHONHASHSEED": "123"},
    )
    assert orjson.loads(out.stdout) == signatures(texts).tolist()


def test_case_spacing_links_and_repost_prefix_do_not_count():
    base = "Traffic on the bridge is wild this morning, stay safe"
    same = [
        "TRAFFIC on the bridge is   wild this morning, stay safe",
        "Traffic on the bridge is wild this morning, stay safe https://t.co/abc",
        "RT @someone: Traffic on the bridge is wild this morning, stay safe",
        "  traffic on the bridge is wild\nthis morning, stay safe ",
    ]
    sig = signatures([base, *same, "", None, "ok", "OK "])
    for i in range(1, 5):
        assert (sig[i] == sig[0]).all(), same[i - 1]
    keys = band_keys(sig, lsh_params(0.8))
    assert (keys[5] == 0).all() and (keys[6] == 0).all()  # no text: never a candidate
    assert (keys[7] == keys[8]).all() and (keys[7] != 0).all()  # short texts are one shingle
    assert len({int(k) for k in keys[0]} & {int(k) for k in keys[7]}) == 0


def test_bands_and_rows_follow_the_threshold():
    for t in (0.5, 0.7, 0.8, 0.9, 0.95):
        p = lsh_params(t)
        assert p.bands * p.rows <= SIGNATURE_SIZE
        assert candidate_probability(t, p.bands, p.rows) >= 0.95
        more = p.rows + 1
        assert candidate_probability(t, SIGNATURE_SIZE // more, more) < 0.95
        # recall at threshold + 0.1 and (almost) no candidates far below
        assert candidate_probability(min(1, t + 0.1), p.bands, p.rows) > 0.99
    assert (lsh_params(0.8).bands, lsh_params(0.8).rows) == (10, 6)
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"expected a number in \(0, 1\]"):
            lsh_params(bad)
    with pytest.raises(UserError, match=r"--dedup-near 1.5: expected a similarity in \(0, 1\]"):
        IngestPostsConfig(sources=("x",), dataset="y", dedup_near=1.5)


def _members(specs: list[tuple[str, int, bool, str, np.ndarray]]) -> pa.Table:
    """(post_id, created_at ms, new, edit_root, signature) -> member rows."""
    ids = [s[0] for s in specs]
    return pa.table(
        {
            "post": pa.array(post_keys(ids)),
            "post_id": ids,
            "created_at": pa.array([s[1] for s in specs], pa.timestamp("ms", tz="UTC")),
            "edit_root": [s[3] for s in specs],
            "new": [s[2] for s in specs],
            "minhash": pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate([s[4] for s in specs]), pa.uint32()), SIGNATURE_SIZE
            ),
        }
    ).cast(
        pa.schema(
            [
                ("post", pa.uint64()),
                ("post_id", pa.string()),
                ("created_at", pa.timestamp("ms", tz="UTC")),
                ("edit_root", pa.string()),
                ("new", pa.bool_()),
                ("minhash", SIGNATURE_TYPE),
            ]
        )
    )


def _pairs(ids: list[tuple[str, str]]) -> pa.Table:
    a = post_keys([x for x, _ in ids])
    b = post_keys([y for _, y in ids])
    return pa.table({"a": np.minimum(a, b), "b": np.maximum(a, b)})


def _sig(agree_with: np.ndarray | None, fraction: float, rng: np.random.Generator) -> np.ndarray:
    fresh = rng.integers(0, 2**32 - 1, SIGNATURE_SIZE, dtype=np.uint32)
    if agree_with is None:
        return fresh
    n = round(fraction * SIGNATURE_SIZE)
    return np.concatenate([agree_with[:n], fresh[n:]])


def test_a_chain_removes_only_posts_similar_to_a_kept_one():
    rng = np.random.default_rng(1)
    a = _sig(None, 0, rng)
    b, c = a.copy(), a.copy()
    b[56:] = rng.integers(0, 2**31, 8, dtype=np.uint32)  # A~B: 56 of 64 agree
    c[56:] = b[56:]
    c[:8] = rng.integers(2**31, 2**32 - 1, 8, dtype=np.uint32)  # B~C: 56; A~C: 48
    assert estimated_jaccard(b, c) >= 0.8 > estimated_jaccard(a, c)
    members = _members([("1", 10, True, "1", a), ("2", 20, True, "2", b), ("3", 30, True, "3", c)])
    pairs = _pairs([("1", "2"), ("2", "3"), ("1", "3")])
    out = choose_removals([pairs], [members], 0.8, "run")
    assert out.schema.equals(NEAR_DUPLICATES_SCHEMA)
    assert out.select(["post_id", "kept_post_id"]).to_pylist() == [
        {"post_id": "2", "kept_post_id": "1"}
    ]
    assert out.column("estimated_jaccard")[0].as_py() == pytest.approx(56 / 64)
    # the input order does not matter: time, then id, decides
    shuffled = choose_removals([pairs.take([2, 0, 1])], [members.take([2, 1, 0])], 0.8, "run")
    assert shuffled.equals(out)
    # the same time: the smaller id is the earlier post
    tied = _members([("9", 10, True, "9", a), ("8", 10, True, "8", b)])
    out = choose_removals([_pairs([("8", "9")])], [tied], 0.8, "run")
    assert out.column("post_id").to_pylist() == ["9"]


def test_committed_posts_stay_and_versions_of_one_post_never_pair():
    rng = np.random.default_rng(2)
    a = _sig(None, 0, rng)
    near = _sig(a, 0.95, rng)
    # a committed post later than the new one still stays; the new one goes
    members = _members([("1", 50, False, "1", a), ("2", 10, True, "2", near)])
    out = choose_removals([_pairs([("1", "2")])], [members], 0.8, "r")
    assert out.select(["post_id", "kept_post_id"]).to_pylist() == [
        {"post_id": "2", "kept_post_id": "1"}
    ]
    # two committed posts: settled before, nothing to do
    members = _members([("1", 50, False, "1", a), ("2", 10, False, "2", near)])
    assert choose_removals([_pairs([("1", "2")])], [members], 0.8, "r").num_rows == 0
    # an edit of a committed post is the same post, not a near-duplicate of it
    members = _members([("1", 50, False, "1", a), ("2", 60, True, "1", near)])
    assert choose_removals([_pairs([("1", "2")])], [members], 0.8, "r").num_rows == 0
    # below the threshold: a candidate, not a near-duplicate
    far = _sig(a, 0.7, rng)
    members = _members([("1", 50, True, "1", a), ("2", 60, True, "2", far)])
    assert choose_removals([_pairs([("1", "2")])], [members], 0.8, "r").num_rows == 0


def _one_by_one(members: pa.Table, threshold: float) -> dict[str, str]:
    """The rule of ``near_dup``, one post after another in time order: removed -> twin."""
    rows = members.to_pylist()
    sig = signature_matrix(members.column("minhash"))
    order = sorted(
        range(len(rows)), key=lambda i: (rows[i]["new"], rows[i]["created_at"], rows[i]["post_id"])
    )
    kept: list[int] = []
    removed = {}
    for i in order:
        twins = [
            j
            for j in kept
            if estimated_jaccard(sig[i], sig[j]) >= threshold
            and rows[i]["edit_root"] != rows[j]["edit_root"]
        ]
        if rows[i]["new"] and twins:
            removed[rows[i]["post_id"]] = rows[twins[0]]["post_id"]
        else:
            kept.append(i)
    return removed


@pytest.mark.parametrize("seed", range(12))
def test_choosing_follows_the_rule_one_post_after_another(seed):
    # Families of similar signatures (chains, clusters, ties in time, committed posts, edits
    # of one post): what is decided at once must be what the rule decides post by post.
    rng = np.random.default_rng(seed)
    bases = [_sig(None, 0, rng) for _ in range(4)]
    specs = []
    for k in range(70):
        sig = bases[rng.integers(4)].copy()
        changed = rng.choice(SIGNATURE_SIZE, rng.integers(0, 20), replace=False)
        sig[changed] = rng.integers(0, 2**32 - 1, len(changed), dtype=np.uint32)
        root = str(k) if rng.random() < 0.9 else str(k % 5)
        specs.append((str(k), int(rng.integers(0, 30)), bool(rng.random() < 0.8), root, sig))
    members = _members(specs)
    ids = [s[0] for s in specs]
    every_pair = _pairs([(x, y) for i, x in enumerate(ids) for y in ids[i + 1 :]])
    out = choose_removals([every_pair], [members], 0.8, "r")
    expected = _one_by_one(members, 0.8)
    assert len(expected) > 10  # the case is not trivial
    assert _as_dict(out) == expected
    when = dict(zip(ids, (s[1] for s in specs), strict=True))
    assert out.column("post_id").to_pylist() == sorted(expected, key=lambda p: (when[p], p))


def _decide(table: pa.Table, threshold: float) -> dict[str, str]:
    """removed -> twin by the steps ``DedupNear`` runs (copies set aside, band buckets)."""
    params = lsh_params(threshold)
    found = [split_copies([t for _, t in copy_rows(table, "_minhash", new=True, buckets=3)])]
    skip = np.unique(found[0].column("post").to_numpy())
    by_bucket: dict[int, list] = {}
    for b, part in band_rows(table, "_minhash", params, new=True, buckets=3, skip=skip):
        by_bucket.setdefault(b, []).append(part)
    pairs = [candidate_pairs(parts, threshold) for parts in by_bucket.values()]
    ends = [p.column(c).to_numpy() for p in pairs for c in (0, 1)]
    posts = np.unique(np.concatenate([np.empty(0, np.uint64), *ends]))
    members = [member_rows(table, "_minhash", posts, new=True)]
    removed = choose_removals(pairs, members, threshold, "r")
    expanded = expand_removals(removed, found, "r")
    # what DropNear drops: the keys of every post listed, found without hashing their ids
    keys = removed_keys(removed, members, found)
    np.testing.assert_array_equal(keys, np.unique(post_keys(expanded.column("post_id"))))
    return _as_dict(expanded)


def _as_dict(removed: pa.Table) -> dict[str, str]:
    columns = (removed.column(c).to_pylist() for c in ("post_id", "kept_post_id"))
    return dict(zip(*columns, strict=True))


def _by_the_rule(table: pa.Table, threshold: float) -> dict[str, str]:
    """The rule over every pair that shares a band key (found by comparing all pairs), with
    nothing set aside: what ``_decide`` must give."""
    params = lsh_params(threshold)
    keys = band_keys(signature_matrix(table.column("_minhash")), params)
    share = (keys[:, None, :] == keys[None, :, :]).any(axis=2)
    i, j = np.nonzero(np.triu(share, 1))
    ids = table.column("post_id").to_pylist()
    pairs = _pairs([(ids[x], ids[y]) for x, y in zip(i, j, strict=True)])
    members = member_rows(table, "_minhash", np.unique(post_keys(ids)), new=True)
    return _as_dict(choose_removals([pairs], [members], threshold, "r"))


def test_the_steps_follow_the_rule_and_copies_change_nothing():
    rng = random.Random(5)
    vocab = _words(rng, 400)
    texts: list[str] = []
    for _ in range(300):
        r = rng.random()
        if texts and r < 0.3:
            texts.append(rng.choice(texts).upper())  # the same normal form: a copy
        elif texts and r < 0.6:
            words = rng.choice(texts).split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            texts.append(" ".join(words))
        else:
            texts.append(_text(rng, vocab, 15))
    ids = [str(1000 + i) for i in range(len(texts))]
    created = [rng.randrange(50) for _ in texts]  # many ties: the id decides
    table = pa.table(
        {
            "post_id": ids,
            "created_at": pa.array(created, pa.timestamp("ms", tz="UTC")),
            "edit_history_ids": pa.array([None] * len(ids), pa.list_(pa.string())),
        }
    ).append_column("_minhash", signature_column(pa.array(texts)))
    for threshold in (0.7, 0.9):
        expected = _by_the_rule(table, threshold)
        assert len(expected) > 60  # not trivially equal
        assert _decide(table, threshold) == expected


T0 = 1_700_000_000_000


def _post(pid: str, text: str, minutes: int, author: str = "7") -> dict:
    ts = T0 + minutes * 60_000
    iso = f"{np.datetime64(ts, 'ms').astype(str)}Z"
    return {"id": pid, "text": text, "created_at": iso, "author_id": author}


class _Runs:
    def __init__(self, root: Path, threshold: float = 0.8):
        self.root, self.dataset, self.n, self.threshold = root, str(root / "ds"), 0, threshold

    def ingest(self, lines: list[dict]):
        self.n += 1
        src = self.root / f"in{self.n}.jsonl"
        src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        config = IngestPostsConfig(
            sources=(str(src),), dataset=self.dataset, dedup_near=self.threshold
        )
        report = run(config, beam_options("local", 1, ["--direct_running_mode=in_memory"]))
        assert report.status == "committed", report.message
        assert report.records_in == report.accounted  # nothing lost
        return report

    def ids(self) -> list[str]:
        return sorted(read_version(Dataset.open(self.dataset)).column("post_id").to_pylist())

    def side(self, prefix: str, schema: pa.Schema, version: int | None = None) -> pa.Table:
        ds = Dataset.open(self.dataset)
        entries = [e for e in ds.manifest(version).side_files if e.path.startswith(prefix)]
        tables = [pq.read_table(ds.path(e.path)) for e in entries]
        return pa.concat_tables([schema.empty_table(), *tables]).sort_by("post_id")


def test_ingest_removes_near_duplicates_within_a_run_and_against_committed_posts(tmp_path):
    rng = random.Random(3)
    vocab = _words(rng, 2000)
    originals = [_text(rng, vocab, 20) for _ in range(30)]
    lines, expected_removed = [], {}
    for i, text in enumerate(originals):
        lines.append(_post(f"{100 + i}", text, minutes=i))
    # planted near-duplicates, later than their original: case, spacing, a link, one word
    variants = {
        200: (100, originals[0].upper()),
        201: (101, originals[1].replace(" ", "  ") + " https://t.co/xyz"),
        202: (102, originals[2] + " " + vocab[0]),
        203: (103, "RT @a: " + originals[3]),
        204: (100, originals[0] + " !!"),
    }
    for pid, (orig, text) in variants.items():
        assert jaccard(text, originals[orig - 100]) >= 0.9
        lines.append(_post(str(pid), text, minutes=100 + pid))
        expected_removed[str(pid)] = str(orig)
    # an earlier near-duplicate (by time) is the one kept: 106's twin 300 is older
    lines.append(_post("300", originals[6] + " ok", minutes=-5))
    expected_removed["106"] = "300"
    random.Random(0).shuffle(lines)
    runs = _Runs(tmp_path)
    report = runs.ingest(lines)
    assert report.deduplicated_by_reason.get("near_duplicate") == len(expected_removed)
    everything = {str(x["id"]) for x in lines}
    assert runs.ids() == sorted(everything - expected_removed.keys())
    removed = runs.side("near_duplicates/", NEAR_DUPLICATES_SCHEMA)
    assert (
        dict(
            zip(*(removed.column(c).to_pylist() for c in ("post_id", "kept_post_id")), strict=True)
        )
        == expected_removed
    )
    assert all(e >= 0.8 for e in removed.column("estimated_jaccard").to_pylist())
    # the signatures of exactly the posts written are stored
    sigs = runs.side("minhash/", MINHASH_SCHEMA)
    assert sigs.column("post_id").to_pylist() == runs.ids()

    # an incremental run: new posts against the committed ones, by their stored signatures
    later = [
        _post("400", originals[10].title(), minutes=500),
        _post("401", _text(rng, vocab, 20), minutes=501),
        _post("402", originals[10] + " yes", minutes=502),
    ]
    report = runs.ingest(later)
    assert report.deduplicated_by_reason.get("near_duplicate") == 2
    assert "401" in runs.ids() and "400" not in runs.ids() and "402" not in runs.ids()
    v2 = runs.side("near_duplicates/", NEAR_DUPLICATES_SCHEMA)
    assert {r["post_id"]: r["kept_post_id"] for r in v2.to_pylist()} == {
        **expected_removed,
        "400": "110",
        "402": "110",
    }
    # only the new run's written post was hashed and stored; the first run's files stay listed
    assert runs.side("minhash/", MINHASH_SCHEMA).column("post_id").to_pylist() == runs.ids()
    assert {e.version for e in Dataset.open(runs.dataset).manifest().side_files} == {1, 2}

    # compliance deletes 110: its signature no longer removes anything
    runs.ingest([post_event("delete", "110", "7")])
    report = runs.ingest([_post("500", originals[10] + " again", minutes=600)])
    assert not report.deduplicated_by_reason.get("near_duplicate") and "500" in runs.ids()

    # gc keeps every listed side file
    collect_garbage(Dataset.open(runs.dataset), min_age=timedelta(0))
    ds = Dataset.open(runs.dataset)
    assert all(ds.fs.exists(ds.path(e.path)) for e in ds.manifest().side_files)


def test_the_cli_explains_a_bad_threshold(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps(_post("1", "hello there", 0)) + b"\n")
    out = subprocess.run(
        [str(BIN), "ingest", "posts", str(src), "--to", str(tmp_path / "ds"), "--dedup-near", "0"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .endswith("--dedup-near 0.0: expected a similarity in (0, 1], e.g. 0.8")
    )
    assert len(out.stderr.strip().splitlines()) == 1
    help_text = subprocess.run(
        [str(BIN), "ingest", "posts", "--help"], capture_output=True, text=True
    ).stdout
    assert "--dedup-near THRESHOLD" in help_text and "5-grams" in help_text


def test_signatures_of_another_scheme_are_refused_before_the_run(tmp_path):
    runs = _Runs(tmp_path)
    runs.ingest([_post("1", "the bridge is closed again this morning", 0)])
    ds = Dataset.open(runs.dataset)
    (entry,) = [e for e in ds.manifest().side_files if e.path.startswith("minhash/")]
    stored = pq.read_table(ds.path(entry.path))
    assert stored.schema.metadata[b"shardsmith.minhash_scheme"] == b"oph64-v1"
    # what a run before one-permutation hashing wrote: the same columns, no scheme
    pq.write_table(stored.replace_schema_metadata(None), ds.path(entry.path))
    with pytest.raises(UserError, match=r"minhash/.*scheme .*64 permutations.*new dataset"):
        runs.ingest([_post("2", "the bridge is closed again this morning!", 5)])
    assert runs.ids() == ["1"]  # nothing was committed


def test_candidate_pairs_are_the_pairs_of_each_band_key_with_a_new_post():
    def band(rows):  # (key, post, new)
        cols = list(zip(*rows, strict=True)) if rows else [[], [], []]
        return pa.table(
            [pa.array(cols[0], pa.uint64()), pa.array(cols[1], pa.uint64()), pa.array(cols[2])],
            names=["key", "post", "new"],
        )

    def pairs(*parts):
        out = candidate_pairs(list(parts))
        return set(zip(out.column("a").to_pylist(), out.column("b").to_pylist(), strict=True))

    assert pairs(band([])) == set()
    alone = band([(1000 + k, 500 + k, True) for k in range(50)])  # each key one post's only
    assert pairs(alone) == set()
    small = band([(7, 3, True), (7, 1, False), (7, 2, False), (8, 4, False), (8, 5, False)])
    assert pairs(small, alone) == {(1, 3), (2, 3)}  # committed posts are not paired again
    big = band([(9, p, True) for p in range(100, 140)])  # more than 32: each with the first
    assert pairs(big) == {(100, p) for p in range(101, 140)}
    # a pair found in two bands (and a band row repeated by the runner) is one pair; pairs sorted
    twice = band([(7, 3, True), (7, 1, False), (11, 3, True), (11, 1, False), (11, 3, True)])
    out = candidate_pairs([twice, small])
    assert list(zip(out.column("a").to_pylist(), out.column("b").to_pylist(), strict=True)) == [
        (1, 3),
        (2, 3),
    ]


@pytest.mark.parametrize("url", ["local", "memory://stage-sigs"])
def test_staged_signatures_are_found_by_the_keys_in_any_order(tmp_path, url):
    """Signatures are staged apart from the resolution keys: whichever keys survive, in
    whatever order, each finds its own post's signature (on local disk, read mapped)."""
    posts = posts_table(60)  # several days: several staged batches of rows
    texts = [f"post {i % 7} says {'hello ' * (i % 5)}world" for i in range(60)]
    for name, values in (("text", texts), ("text_hash", [dedup_hash(t) for t in texts])):
        i = posts.schema.get_field_index(name)
        posts = posts.set_column(i, name, pa.array(values, posts.schema.field(i).type))
    fs, root = open_url(str(tmp_path) if url == "local" else url)
    staged = stage_chunk(fs, root, "run", ParsedChunk(posts, [], [], {}), 4, minhash=True)
    assert len(staged.keys.buckets) > 1
    refs = [staged.keys.of_bucket(b) for b in staged.keys.buckets]
    keys = pa.concat_tables([read_staged(fs, root, ref) for ref in refs])
    assert "_minhash" not in keys.column_names
    some = keys.take(pa.array(np.random.default_rng(3).permutation(keys.num_rows)[:45]))
    found = signature_matrix(read_signatures(fs, root, some))
    text = dict(
        zip(posts.column("post_id").to_pylist(), posts.column("text").to_pylist(), strict=True)
    )
    expected = signatures([text[p] for p in some.column("post_id").to_pylist()])
    np.testing.assert_array_equal(found, expected)
    assert read_signatures(fs, root, some.slice(0, 0)).type == SIGNATURE_TYPE


def test_a_signature_cache_changes_no_signature_and_signs_a_remembered_text_once():
    rng = random.Random(5)
    vocab = _words(rng, 200)
    texts = [_text(rng, vocab, 12) for _ in range(40)] + ["", "RT @a: " + vocab[0]]
    cache = SignatureCache(size=16)  # small: both generations turn over during the test
    for _ in range(8):
        picked = [rng.choice(texts) for _ in range(30)]
        hashes = np.array([dedup_hash(t) for t in picked], np.uint64)
        assert signature_column(pa.array(picked), hashes, cache).equals(
            signature_column(pa.array(picked))
        )
    signed = []

    def sign(which):
        signed.append(len(which))
        return signatures([texts[i] for i in which])

    hashes = np.array([dedup_hash(t) for t in texts[:10]], np.uint64)
    first = SignatureCache().signatures(hashes, sign)
    cache = SignatureCache()
    cache.signatures(hashes[:6], sign)
    np.testing.assert_array_equal(cache.signatures(hashes, sign), first)
    assert signed == [10, 6, 4]  # the second call signed only the four it had not seen


def test_pairs_left_out_by_their_low_bits_could_never_be_verified():
    rng = random.Random(11)
    vocab = _words(rng, 60)
    base = [_text(rng, vocab, 20) for _ in range(30)]
    # each base text and variants of it, from near copies to half rewritten
    texts = [t for b in base for t in [b, *(_replace(rng, vocab, b, k) for k in (1, 2, 4, 7))]]
    ids = [f"p{i}" for i in range(len(texts))]
    sig = signatures(texts)
    table = pa.table({"post_id": ids, "_minhash": signature_column(pa.array(texts))})
    params = lsh_params(0.8)
    rows = [part for _, part in band_rows(table, "_minhash", params, new=True, buckets=1)]
    every, kept = candidate_pairs(rows), candidate_pairs(rows, 0.8)

    def as_set(t):
        return set(zip(t.column("a").to_pylist(), t.column("b").to_pylist(), strict=True))

    row_of = dict(zip(post_keys(ids).tolist(), range(len(ids)), strict=True))
    left_out = as_set(every) - as_set(kept)
    assert as_set(kept) <= as_set(every) and len(left_out) > 10
    for a, b in left_out:
        assert estimated_jaccard(sig[row_of[a]], sig[row_of[b]]) < 0.8
    assert any(estimated_jaccard(sig[row_of[a]], sig[row_of[b]]) >= 0.8 for a, b in as_set(kept))


def test_band_and_signature_keys_reach_every_group():
    # Steps split keys into groups by ``key % buckets``: a bit fixed in every key (odd keys)
    # would leave half of the groups without work.
    rng = random.Random(4)
    vocab = _words(rng, 500)
    sig = signatures([_text(rng, vocab, 20) for _ in range(500)])
    for keys in (band_keys(sig, lsh_params(0.8)).reshape(-1), signature_keys(sig)):
        assert keys.all()  # 0 means "no key"
        assert {bucket for bucket, _ in bucket_positions(keys, 24)} == set(range(24))


def test_low_bits_are_bits_0_and_1_of_every_value():
    sig = np.random.default_rng(5).integers(0, 2**32, (7, SIGNATURE_SIZE), np.uint32)
    low0, low1 = low_bits(sig)
    for row in range(len(sig)):
        for value in range(SIGNATURE_SIZE):
            assert (int(low0[row]) >> value) & 1 == int(sig[row, value]) & 1
            assert (int(low1[row]) >> value) & 1 == (int(sig[row, value]) >> 1) & 1


def test_members_of_finds_each_key_wherever_it_is():
    rng = np.random.default_rng(8)
    known = np.unique(rng.integers(1, 2**64 - 1, 500, np.uint64, endpoint=True))
    # keys in no order: members, absent keys below, between and above the known ones, repeats
    ends = np.array([0, 2**64 - 1], np.uint64)
    asked = np.concatenate(
        [known[::3], rng.integers(1, 2**64 - 1, 300, np.uint64), ends, known[:5]]
    )
    assert asked.dtype == np.uint64
    rng.shuffle(asked)
    expected = np.array([int(k) in set(known.tolist()) for k in asked])
    np.testing.assert_array_equal(members_of(asked, known), expected)
    assert members_of(asked, known).sum() >= len(known[::3])
    assert not members_of(asked, np.empty(0, np.uint64)).any()


def test_a_small_signature_cache_forgets_old_texts_and_remembers_recent_ones():
    # Far more texts than its four slots hold, some coming back, several sharing a slot in one
    # call: every signature is still the signer's, and a text just signed is not signed again.
    rng = np.random.default_rng(3)
    cache = SignatureCache(size=4)
    truth = {}
    signed = []

    def sign_of(hashes):
        def sign(which):
            signed.extend(hashes[which].tolist())
            return np.stack(
                [
                    truth.setdefault(int(h), rng.integers(0, 2**32, 64, np.uint32))
                    for h in hashes[which]
                ]
            )

        return sign

    for _ in range(50):
        hashes = np.unique(rng.integers(0, 40, 6).astype(np.uint64))
        got = cache.signatures(hashes, sign_of(hashes))
        np.testing.assert_array_equal(got, np.stack([truth[int(h)] for h in hashes]))
        del signed[:]
        again = cache.signatures(hashes, sign_of(hashes))
        np.testing.assert_array_equal(again, got)
        # One text per slot is remembered: the others of a slot are signed again.
        assert len(signed) == len(hashes) - len({int(h) % 4 for h in hashes})
        del signed[:]
    with pytest.raises(ValueError, match="power of two"):
        SignatureCache(size=6)
