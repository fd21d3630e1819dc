"""`shardsmith tokenize`: exact token ids, every token once, EOS, patches, shuffle, determinism."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from tablegen import clips_table, posts_table, write_data_file

from catalog import CommitRequest, Dataset, new_run_id
from catalog.parquet import read_parquet
from pipelines.tokenize import TokenizeConfig, run
from runners.errors import UserError
from runners.options import beam_options
from transforms.tokenize import load_tokenizer, patchify, shuffle_keys, unpatchify
from transforms.tokenize.default_tokenizer import DEFAULT_DIR, train_default_tokenizer

BIN = Path(sys.executable).parent / "shardsmith"
TEXTS = [
    "Traffic on the bridge is wild this morning 🚗 #traffic",
    "東京の朝の渋滞はすごい #東京 👨‍👩‍👧",
    "Q&A tonight: is <self-driving> > human driving? $TSLA",
    "a post that says <|endoftext|> and <|patch|> in its text",
    "",  # skipped: nothing to say
    "Mañana hay partido #fútbol",
    "x",
]


def in_process():
    return beam_options("local", 1, ["--direct_running_mode=in_memory"])


def _commit(url: str, kind: str, tables: list[pa.Table]) -> Dataset:
    ds = Dataset.create(url, kind)
    run_id = new_run_id()
    entries = [
        write_data_file(ds, f"data/{run_id}-{i:05d}.parquet", t) for i, t in enumerate(tables)
    ]
    ds.commit(CommitRequest(run_id=run_id, add=entries))
    return ds


def _posts(n: int, prefix: str) -> pa.Table:
    table = posts_table(n, prefix)
    texts = [TEXTS[i % len(TEXTS)] + ("" if i < len(TEXTS) else f" #{i}") for i in range(n)]
    return table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))


def _jpeg(seed: int, w: int = 40, h: int = 24) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _clips(n: int) -> pa.Table:
    rows = clips_table(n).to_pylist()
    for i, row in enumerate(rows):
        for c, cam in enumerate(row["cameras"]):
            cam["frames"] = [_jpeg(100 * i + 10 * c + k) for k in range(3)]
        row["event"] = {"reason": "user_interaction_honk", "city": None, "lat": None, "lon": None}
        row["tags"] = ["autopilot_disengage", "event:user_interaction_honk", "hard_brake"]
        if i == 1:
            row["event"], row["tags"] = None, ["stop"]
        if i == 2:
            row["tags"] = None  # a clip written before tags
    return pa.Table.from_pylist(rows, schema=clips_table(0).schema)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    posts = _commit(str(root / "posts"), "posts", [_posts(40, "a"), _posts(25, "b")])
    clips = _commit(str(root / "clips"), "clips", [_clips(4)])
    return posts, clips


def _tokenize(inputs, out, options=None, **kw) -> tuple:
    kw.setdefault("seq_len", 64)
    config = TokenizeConfig(inputs=tuple(str(d.url) for d in inputs), dataset=str(out), **kw)
    report = run(config, options or in_process())
    return report, Dataset.open(str(out))


def _examples(ds: Dataset, version=None) -> list[dict]:
    files = sorted(ds.files(version), key=lambda f: f.path)
    return [r for f in files for r in read_parquet(ds.fs, ds.path(f.path)).to_pylist()]


def _expected_docs(posts: Dataset, clips: Dataset | None, spec) -> dict[tuple, list[int]]:
    """Each document's token ids, computed independently with transformers' own tokenizer."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(DEFAULT_DIR))
    eos, ids = spec.special_ids["eos"], spec.special_ids
    out = {}
    for f in posts.files():
        for row in read_parquet(posts.fs, posts.path(f.path)).to_pylist():
            if row["text"]:
                # Special-token strings in a post are text, not control tokens.
                enc = hf(row["text"], add_special_tokens=False, split_special_tokens=True)
                out[(posts.url, row["post_id"])] = [*enc.input_ids, eos]
    for f in clips.files() if clips else ():
        for row in read_parquet(clips.fs, clips.path(f.path)).to_pylist():
            doc = []
            # The reason, then the tags but the event's own: "user_interaction_honk hard_brake".
            words = [row["event"]["reason"]] if row["event"] and row["event"]["reason"] else []
            words += [t for t in row["tags"] or () if not t.startswith("event:")]
            if words:
                doc += hf(" ".join(words), add_special_tokens=False).input_ids
            for cam in row["cameras"]:
                doc.append(ids["video_start"])
                for _ in cam["frames"]:
                    doc += [ids["patch"]] * (2 * 3)  # 40x24 frames: 2 rows x 3 cols of 16 px
                doc.append(ids["video_end"])
            out[(clips.url, row["clip_id"])] = [*doc, eos]
    return out


def _reassemble(examples: list[dict]) -> dict[tuple, list[tuple[int, list[int], list]]]:
    """Each document's pieces (offset, tokens, patches), in the order they were packed."""
    pieces = defaultdict(list)
    for ex in examples:
        assert sum(ex["doc_lens"]) == len(ex["input_ids"])
        assert ex["doc_lens"] == [s["length"] for s in ex["sources"]]
        media = [np.frombuffer(m["patches"], np.uint8).reshape(m["shape"]) for m in ex["media"]]
        patches = np.concatenate(media) if media else np.zeros((0, 16, 16, 3), np.uint8)
        at = used = 0
        for span in ex["sources"]:
            tokens = ex["input_ids"][at : at + span["length"]]
            n = tokens.count(4)
            pieces[(span["dataset"], span["id"])].append(
                (span["offset"], tokens, patches[used : used + n])
            )
            at += span["length"]
            used += n
        assert used == len(patches), "media must hold exactly the example's placeholders"
    return pieces


def test_every_token_of_every_document_once_in_order(inputs, tmp_path):
    posts, clips = inputs
    report, ds = _tokenize(inputs, tmp_path / "tokens", shards=3)
    spec = load_tokenizer()
    expected = _expected_docs(posts, clips, spec)
    examples = _examples(ds)
    pieces = _reassemble(examples)
    assert set(pieces) == set(expected)
    for key, doc in expected.items():
        offsets = [p[0] for p in pieces[key]]
        assert offsets == sorted(offsets), f"{key}: pieces out of order"
        assert [t for p in pieces[key] for t in p[1]] == doc, key
    # Every example is full except the last of each of the 3 shards.
    assert sum(len(e["input_ids"]) != 64 for e in examples) <= 3
    assert all(len(e["input_ids"]) <= 64 for e in examples)
    assert report.records_in == 65 + 4
    assert report.skipped_by_reason == {"empty_text": 2}  # post 4 of each file has no text
    assert report.records_written == len(expected)
    assert report.stats["tokens"] == sum(map(len, expected.values()))
    props = ds.manifest().properties
    assert props["total_tokens"] == report.stats["tokens"]
    assert props["tokenizer"]["sha256"] == spec.sha256
    assert (props["seq_len"], props["pack"], props["seed"]) == (64, "concat", 0)


def test_eos_ends_every_document_and_nothing_else(inputs, tmp_path):
    _, ds = _tokenize(inputs[:1], tmp_path / "tokens")
    for (_, post_id), pieces in _reassemble(_examples(ds)).items():
        doc = [t for p in pieces for t in p[1]]
        assert doc[-1] == 0 and 0 not in doc[:-1], post_id


def test_patches_reassemble_to_the_decoded_frames(inputs, tmp_path):
    _, clips = inputs
    _, ds = _tokenize(inputs[1:], tmp_path / "tokens", seq_len=20)
    pieces = _reassemble(_examples(ds))
    rows = read_parquet(clips.fs, clips.path(clips.files()[0].path)).to_pylist()
    for row in rows:
        patches = np.concatenate([p[2] for p in pieces[(clips.url, row["clip_id"])]])
        frames = [f for cam in row["cameras"] for f in cam["frames"]]
        assert len(patches) == 6 * len(frames)
        for i, jpeg in enumerate(frames):
            decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
            image = unpatchify(patches[6 * i : 6 * i + 6], 2, 3)
            assert np.array_equal(image[:24, :40], decoded)
            assert not image[24:].any()  # padding below the 24-pixel frame is black
            assert np.array_equal(patchify(jpeg, 16), patches[6 * i : 6 * i + 6])


def _checksums(ds: Dataset) -> list[str]:
    return [f.checksum for f in sorted(ds.files(), key=lambda f: f.path)]


def test_same_seed_same_bytes_on_every_runner(inputs, tmp_path):
    runs = {
        "in-process": in_process(),
        "local x1": beam_options("local", 1, []),
        "local x2": beam_options("local", 2, []),
    }
    sums = {
        name: _checksums(_tokenize(inputs, tmp_path / name, options, shards=3)[1])
        for name, options in runs.items()
    }
    assert len(sums["in-process"]) == 3
    assert sums["local x1"] == sums["in-process"] == sums["local x2"]


def test_a_different_seed_gives_a_different_order(inputs, tmp_path):
    orders = []
    for seed in (0, 0, 1):
        _, ds = _tokenize(inputs[:1], tmp_path / f"s{seed}-{len(orders)}", seed=seed, shards=2)
        orders.append([s["id"] for e in _examples(ds) for s in e["sources"]])
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]
    assert sorted(set(orders[0])) == sorted(set(orders[2]))


def test_pad_puts_one_document_per_example(inputs, tmp_path):
    posts, _ = inputs
    report, ds = _tokenize(inputs[:1], tmp_path / "tokens", pack="pad", seq_len=8)
    expected = _expected_docs(posts, None, load_tokenizer())
    examples = _examples(ds)
    assert len(examples) == len(expected)
    for ex in examples:
        (span,) = ex["sources"]
        doc = expected[(span["dataset"], span["id"])]
        kept = min(len(doc), 8)
        assert ex["input_ids"] == doc[:kept] + [1] * (8 - kept)  # pad id 1
        assert ex["doc_lens"] == [kept] and span["offset"] == 0
    assert report.stats["truncated_tokens"] == sum(max(0, len(d) - 8) for d in expected.values())


def test_threads_render_a_conversation_as_one_document(tmp_path):
    table = posts_table(5, "t")
    table = table.set_column(
        table.schema.get_field_index("conversation_id"),
        "conversation_id",
        pa.array(["t0", "t0", None, "t0", "t9"]),
    )
    texts = pa.array(["first", "second", "alone", "third", "other"])
    table = table.set_column(table.schema.get_field_index("text"), "text", texts)
    posts = _commit(str(tmp_path / "posts"), "posts", [table.slice(3), table.slice(0, 3)])
    report, ds = _tokenize([posts], tmp_path / "tokens", threads=True, pack="pad", seq_len=32)
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(DEFAULT_DIR))
    got = {e["sources"][0]["id"]: e["input_ids"][: e["doc_lens"][0]] for e in _examples(ds)}
    want = {"t0": "first\n\nsecond\n\nthird", "t2": "alone", "t9": "other"}
    assert got == {k: [*hf(v, add_special_tokens=False).input_ids, 0] for k, v in want.items()}
    assert (report.records_in, report.records_written) == (5, 5)


def test_a_different_tokenizer_is_refused(inputs, tmp_path):
    out = tmp_path / "tokens"
    _tokenize(inputs[:1], out)
    other = train_default_tokenizer(tmp_path / "other")
    data = json.loads((other / "tokenizer.json").read_text())
    data["normalizer"] = {"type": "Lowercase"}
    (other / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="was tokenized with shardsmith-default"):
        _tokenize(inputs[:1], out, tokenizer=str(other / "tokenizer.json"))
    with pytest.raises(UserError, match="seq_len 64, not 128"):
        run(TokenizeConfig(inputs=(str(inputs[0].url),), dataset=str(out), seq_len=128), None)


def test_a_user_tokenizer_without_media_tokens_gets_them_added(inputs, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    spec = load_tokenizer(str(tmp_path / "tokenizer.json"))
    assert sorted(spec.special_ids.values()) == [3, 4, 5, 6, 7]
    assert spec.vocab_size == 8
    _, ds = _tokenize(inputs, tmp_path / "tokens", tokenizer=str(tmp_path / "tokenizer.json"))
    assert ds.manifest().properties["tokenizer"]["vocab_size"] == 8


def test_incremental_tokenizes_only_new_input_files(tmp_path):
    posts = _commit(str(tmp_path / "posts"), "posts", [_posts(10, "a")])
    out = tmp_path / "tokens"
    first, _ = _tokenize([posts], out, incremental=True)
    again, _ = _tokenize([posts], out, incremental=True)
    assert (first.status, again.status) == ("committed", "nothing-new")
    run_id = new_run_id()
    entry = write_data_file(posts, f"data/{run_id}-00000.parquet", _posts(6, "b"))
    posts.commit(CommitRequest(run_id=run_id, add=[entry]))
    third, ds = _tokenize([posts], out, incremental=True)
    assert third.records_in == 6 and ds.latest_version() == 2
    ids = [s["id"] for e in _examples(ds) for s in e["sources"]]
    want = {f"a{i}" for i in range(10)} | {f"b{i}" for i in range(6)}
    assert sorted(set(ids)) == sorted(want - {"a4", "b4"})  # post 4 has no text
    assert ds.manifest().properties["total_documents"] == 14


def test_the_default_tokenizer_is_reproducible(tmp_path):
    made = train_default_tokenizer(tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (made / name).read_bytes() == (DEFAULT_DIR / name).read_bytes()
    # Loaded by name (no transformers) or through AutoTokenizer from a path: the same tokenizer.
    by_name, by_path = load_tokenizer(), load_tokenizer(str(made))
    assert (by_name.sha256, by_name.json) == (by_path.sha256, by_path.json)
    assert by_name.special_ids == {"eos": 0, "pad": 1, "video_start": 2, "video_end": 3, "patch": 4}


def test_cli_tokenize_and_its_errors(inputs, tmp_path):
    posts, clips = inputs
    out = tmp_path / "tokens"
    cmd = [str(BIN), "tokenize", posts.url, clips.url, "--to", str(out), "--seq-len", "128"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "committed (append, version 1)" in done.stdout
    assert "neighbours from one file" in done.stdout
    bad = [
        ([str(out), "--to", str(tmp_path / "x")], "is a tokens dataset; expected posts or clips"),
        ([posts.url, "--to", str(out), "--seq-len", "64"], "has seq_len 128, not 64"),
        ([posts.url, "--to", str(tmp_path / "y"), "--tokenizer", "./nope"], "no such file"),
        ([posts.url, "--to", str(tmp_path / "y"), "--pack", "zip"], "invalid choice"),
        ([str(tmp_path / "none"), "--to", str(tmp_path / "y")], "none"),
    ]
    for args, message in bad:
        done = subprocess.run([str(BIN), "tokenize", *args], capture_output=True, text=True)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def _reference_key(seed: int, kind: str, doc_id: str) -> int:
    """FNV-1a 64 of (seed, kind, "/", id) then SplitMix64, one byte at a time in Python."""
    mask, h = (1 << 64) - 1, 0xCBF29CE484222325
    for byte in seed.to_bytes(16, "little", signed=True) + f"{kind}/{doc_id}".encode():
        h = ((h ^ byte) * 0x100000001B3) & mask
    z = (h + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_shuffle_keys_are_the_documented_hash_and_spread_evenly():
    ids = [f"p{i}" for i in range(20_000)] + ["", "東京の朝", "x" * 300]
    keys = shuffle_keys(-3, "posts", ids)
    for i in [0, 1, 17, 9_999, 20_000, 20_001, 20_002]:
        assert int(keys[i]) == _reference_key(-3, "posts", ids[i])
    assert shuffle_keys(-3, "posts", pa.array(ids).slice(17, 5)).tolist() == keys[17:22].tolist()
    assert len(set(keys.tolist())) == len(ids)
    counts = np.bincount((keys[:20_000] % np.uint64(8)).astype(int))
    assert counts.min() > 2_300 and counts.max() < 2_700  # 2,500 each, within 8 sigma
    assert shuffle_keys(4, "posts", ids).tolist() != keys.tolist()


def test_token_reader_reads_what_the_pipeline_wrote(inputs, tmp_path):
    from catalog import TokenReader

    _, ds = _tokenize(inputs, tmp_path / "tokens", shards=2, seq_len=48)
    examples = {e["example_id"]: e for e in _examples(ds)}
    seen = []
    for rank in range(2):
        for batch in TokenReader(str(ds.url), batch_size=5, rank=rank, world_size=2, seed=3):
            for i, example_id in enumerate(batch["example_id"]):
                want = examples[example_id]
                n = len(want["input_ids"])
                assert batch["input_ids"][i, :n].tolist() == want["input_ids"]
                assert batch["attention_mask"][i].sum() == n
                got = [m["patches"] for m in batch.get("media", [[]] * 5)[i]]
                assert sum(len(p) for p in got) == want["input_ids"].count(4)
                seen.append(example_id)
    assert sorted(seen) == sorted(examples)
