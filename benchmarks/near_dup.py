"""Near-duplicate removal (``--dedup-near``): quality against brute-force Jaccard, cost, datatrove.

Measured in one run:

* corpus: real-shaped posts (12-40 Zipf-distributed words, hashtags, mentions, a t.co link,
  an emoji) and planted near-duplicates of some of them: 0-12 random edits each (a word
  inserted, dropped, replaced or swapped with its neighbour, the link changed, the case
  changed, spacing changed), so true similarities spread from ~0.3 to 1;
* truth: the exact Jaccard similarity of the character 5-gram sets of every pair at or above
  0.45 (an exact all-pairs join: prefix filtering over shingles ordered rarest first, then
  every candidate's sets intersected), and of every pair the dedup put in one cluster;
* quality, at THRESHOLD 0.6, 0.7, 0.8, 0.9: recall on pairs with true Jaccard >= THRESHOLD +
  0.1 (both posts end in one cluster: the later removed with a kept twin, or both removed for
  the same twin), merged pairs by true Jaccard (none may be <= THRESHOLD - 0.3), and the
  precision/recall curve (precision: share of merged pairs at or above THRESHOLD - 0.1;
  recall at THRESHOLD: share of the pairs at or above THRESHOLD merged). Computed with the
  plain functions the Beam stages run (``transforms.posts.near_dup``), in one process, and
  checked against ``shardsmith ingest posts --dedup-near`` on the same posts (same removals);
* datatrove's MinHash dedup (its 4 stages, own virtualenv, ``make peers``) on the same texts:
  wall time against ours in the pipeline (the ingest with --dedup-near less the one without),
  and cluster agreement (pairs in one cluster in both / in either; the removed sets);
* cost: ``shardsmith ingest posts`` of ``--cost-lines`` realistic twarc2 lines
  (``transforms.samples.firehose``) with and without ``--dedup-near 0.8``, same files, one
  after the other, ``--cost-pairs`` times, the input read once before each pair so that both
  runs read it from the page cache (``_page_cache``); the median counts (target: at most +30%
  at 1 M lines).

    python benchmarks/near_dup.py [--posts 20000] [--cost-lines 1000000] [--cost-pairs 3]
        [--data DIR]
        [--peer .peers/datatrove/bin/python]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from _page_cache import warm
from _peers import DATATROVE, run_datatrove

from catalog import Dataset
from transforms.posts.minhash import lsh_params
from transforms.posts.near_dup import (
    band_rows,
    candidate_pairs,
    choose_removals,
    copy_rows,
    expand_removals,
    member_rows,
    signature_column,
    split_copies,
)
from transforms.posts.text import dedup_form
from transforms.samples.firehose import write_firehose

BIN = Path(sys.executable).parent / "shardsmith"
T0 = 1_700_000_000_000
EMOJI = ["🚗", "🔥", "😂", "👍", "🙏", "✨", "😍", "🚦"]


def make_corpus(n: int, seed: int) -> tuple[list[str], list[int], list[str]]:
    """(post ids, created_at ms, texts): ~70% originals, ~30% planted near-duplicates."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf: a few words are everywhere
    tags = ["#" + rng.choice(vocab) for _ in range(300)]
    users = ["@" + rng.choice(vocab) + str(i) for i in range(500)]

    def link() -> str:
        return "https://t.co/" + "".join(rng.choice(letters + "0123456789") for _ in range(10))

    def original() -> list[str]:
        words = rng.choices(vocab, weights, k=rng.randint(12, 40))
        if rng.random() < 0.5:
            words.insert(0, rng.choice(users))
        words += rng.sample(tags, rng.randint(0, 3))
        if rng.random() < 0.6:
            words.append(link())
        if rng.random() < 0.4:
            words.append(rng.choice(EMOJI))
        return words

    def edit(words: list[str]) -> list[str]:
        words = list(words)
        for _ in range(rng.randint(0, 12)):
            kind = rng.randrange(7)
            i = rng.randrange(len(words))
            if kind == 0:
                words.insert(i, rng.choices(vocab, weights)[0])
            elif kind == 1 and len(words) > 5:
                del words[i]
            elif kind == 2:
                words[i] = rng.choices(vocab, weights)[0]
            elif kind == 3 and i + 1 < len(words):
                words[i], words[i + 1] = words[i + 1], words[i]
            elif kind == 4:
                words = [link() if w.startswith("https://") else w for w in words]
            elif kind == 5:
                words[i] = words[i].upper()
            else:
                words[i] = words[i] + "  "
        return words

    bases: list[list[str]] = []
    texts, created = [], []
    for k in range(n):
        if bases and rng.random() < 0.3:
            words = edit(rng.choice(bases[-2000:]))  # a near-duplicate of a recent post
        else:
            words = original()
            bases.append(words)
        texts.append(" ".join(words))
        created.append(T0 + k * 1000 + rng.randint(0, 5000))
    ids = [str(10**18 + k) for k in range(n)]
    return ids, created, texts


def shingle_sets(texts: list[str]) -> list[frozenset[str]]:
    out = []
    for t in texts:
        f = dedup_form(t)
        out.append(
            frozenset(f[i : i + 5] for i in range(len(f) - 4)) if len(f) >= 5 else frozenset([f])
        )
    return out


def exact_pairs(sets: list[frozenset[str]], t: float) -> dict[tuple[int, int], float]:
    """Every pair with Jaccard >= ``t``, exactly: two sets at >= t share one of the first
    ``|x| - ceil(t |x|) + 1`` shingles of each, ordered rarest first (prefix filtering)."""
    freq: dict[str, int] = defaultdict(int)
    for s in sets:
        for g in s:
            freq[g] += 1
    index: dict[str, list[int]] = defaultdict(list)
    out = {}
    for i, s in enumerate(sets):
        ordered = sorted(s, key=lambda g: (freq[g], g))
        prefix = ordered[: len(s) - int(np.ceil(t * len(s))) + 1]
        seen = set()
        for g in prefix:
            for j in index[g]:
                if j in seen:
                    continue
                seen.add(j)
                a, b = sets[j], s
                if min(len(a), len(b)) < t * max(len(a), len(b)):
                    continue
                inter = len(a & b)
                jac = inter / (len(a) + len(b) - inter)
                if jac >= t:
                    out[(j, i)] = jac
            index[g].append(i)
    return out


def dedup_in_process(
    ids: list[str], created: list[int], texts: list[str], threshold: float, buckets: int = 16
) -> tuple[dict[str, str], float]:
    """removed id -> kept twin id, by the functions the Beam stages call; and the seconds."""
    start = time.perf_counter()
    params = lsh_params(threshold)
    table = pa.table(
        {
            "post_id": ids,
            "created_at": pa.array(created, pa.timestamp("ms", tz="UTC")),
            "edit_history_ids": pa.array([None] * len(ids), pa.list_(pa.string())),
        }
    )
    table = table.append_column("_minhash", signature_column(pa.array(texts)))
    by_sig = defaultdict(list)
    for b, part in copy_rows(table, "_minhash", new=True, buckets=buckets):
        by_sig[b].append(part)
    copies = [split_copies(parts) for parts in by_sig.values()]
    skip = np.unique(
        np.concatenate([np.empty(0, np.uint64)] + [c.column("post").to_numpy() for c in copies])
    )
    by_bucket = defaultdict(list)
    for b, part in band_rows(table, "_minhash", params, new=True, buckets=buckets, skip=skip):
        by_bucket[b].append(part)
    pairs = [candidate_pairs(parts, threshold) for parts in by_bucket.values()]
    posts = np.unique(
        np.concatenate(
            [np.empty(0, np.uint64)]
            + [np.concatenate([p.column(0).to_numpy(), p.column(1).to_numpy()]) for p in pairs]
        )
    )
    members = [member_rows(table, "_minhash", posts, new=True)]
    removed = expand_removals(choose_removals(pairs, members, threshold, "bench"), copies, "bench")
    seconds = time.perf_counter() - start
    gone, twins = removed.column("post_id").to_pylist(), removed.column("kept_post_id").to_pylist()
    return dict(zip(gone, twins, strict=True)), seconds


def jaccard_of(sets, index, a: str, b: str) -> float:
    x, y = sets[index[a]], sets[index[b]]
    return len(x & y) / len(x | y) if x | y else 0.0


def quality(ids, created, texts, sets, truth, threshold):
    removed, seconds = dedup_in_process(ids, created, texts, threshold)
    index = {p: i for i, p in enumerate(ids)}
    root = {p: removed.get(p, p) for p in ids}
    clusters = defaultdict(list)
    for p in ids:
        clusters[root[p]].append(p)
    merged = [
        (a, b)
        for members in clusters.values()
        if len(members) > 1
        for k, a in enumerate(members)
        for b in members[k + 1 :]
    ]
    merged_j = np.array([jaccard_of(sets, index, a, b) for a, b in merged])
    same = {(i, j): root[ids[i]] == root[ids[j]] for (i, j) in truth if truth[(i, j)] >= threshold}
    hi = [k for k, v in truth.items() if v >= threshold + 0.1]
    recall_hi = np.mean([root[ids[i]] == root[ids[j]] for i, j in hi]) if hi else float("nan")
    recall_at = np.mean(list(same.values())) if same else float("nan")
    precision = np.mean(merged_j >= threshold - 0.1) if len(merged_j) else float("nan")
    wrong = int((merged_j <= threshold - 0.3).sum())
    return {
        "removed": removed,
        "seconds": seconds,
        "recall_hi": recall_hi,
        "pairs_hi": len(hi),
        "recall_at": recall_at,
        "precision": precision,
        "merged": len(merged),
        "wrong": wrong,
        "merged_j": merged_j,
        "min_merged_j": float(merged_j.min()) if len(merged_j) else float("nan"),
    }


def write_posts(path: Path, ids, created, texts) -> None:
    with open(path, "wb") as f:
        for pid, ts, text in zip(ids, created, texts, strict=True):
            iso = f"{np.datetime64(ts, 'ms').astype(str)}Z"
            f.write(orjson.dumps({"id": pid, "text": text, "created_at": iso, "author_id": "1"}))
            f.write(b"\n")


def ingest(src: Path, dataset: Path, *flags: str) -> tuple[float, dict]:
    shutil.rmtree(dataset, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN), "ingest", "posts", str(src), "--to", str(dataset), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"ingest posts {src} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds, Dataset.open(str(dataset)).manifest().report


def near_file(dataset: Path) -> dict[str, str]:
    ds = Dataset.open(str(dataset))
    out = {}
    for e in ds.manifest().side_files:
        if e.path.startswith("near_duplicates/"):
            t = pq.read_table(ds.path(e.path))
            gone, twins = t.column("post_id").to_pylist(), t.column("kept_post_id").to_pylist()
            out.update(zip(gone, twins, strict=True))
    return out


def datatrove(
    src: Path, out: Path, workers: int, peer: Path
) -> tuple[float, dict[str, tuple[int, int]]] | None:
    seconds = run_datatrove("datatrove_minhash.py", [str(src), str(out)], out, workers, peer=peer)
    if seconds is None:
        return None
    rows = {}
    for line in (out / "clusters.tsv").read_text().splitlines():
        pid, cluster, removed = line.split("\t")
        rows[pid] = (int(cluster), int(removed))
    return seconds, rows


def agreement(ours: dict[str, str], theirs: dict[str, tuple[int, int]], ids: list[str]) -> str:
    """Pairs in one cluster in both / in either; removed sets' overlap."""

    def pairs(cluster_of: dict[str, object]) -> set[tuple[str, str]]:
        groups = defaultdict(list)
        for p, c in cluster_of.items():
            groups[c].append(p)
        return {(a, b) for g in groups.values() for a in g for b in g if a < b and len(g) < 5000}

    ours_c = {p: ours.get(p, p) for p in ids}
    theirs_c = {p: (c if c >= 0 else p) for p, (c, _) in theirs.items()}
    po, pt = pairs(ours_c), pairs(theirs_c)
    ro = set(ours)
    rt = {p for p, (_, r) in theirs.items() if r}
    both = len(po & pt) / max(1, len(po | pt))
    return (
        f"pairs in one cluster: ours {len(po):,}, datatrove {len(pt):,}, both {len(po & pt):,} "
        f"(agreement {both:.1%}); removed: ours {len(ro):,}, datatrove {len(rt):,}, "
        f"both {len(ro & rt):,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--cost-lines", type=int, default=1_000_000)
    parser.add_argument("--cost-pairs", type=int, default=3, help="runs without and with")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", help="keep the generated firehose input here (reused)")
    parser.add_argument("--peer", default=str(DATATROVE), help="datatrove's virtualenv's python")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids, created, texts = make_corpus(args.posts, seed=16)
        sets = shingle_sets(texts)
        start = time.perf_counter()
        truth = exact_pairs(sets, 0.45)
        t_truth = time.perf_counter() - start
        bins = np.histogram(list(truth.values()), bins=[0.45, 0.6, 0.7, 0.8, 0.9, 1.01])[0]
        print(
            f"corpus: {len(ids):,} posts, {np.mean([len(t) for t in texts]):.0f} characters on "
            f"average; exact pairs >= 0.45: {len(truth):,} ({t_truth:.1f} s); by Jaccard "
            f"[.45,.6) {bins[0]:,} [.6,.7) {bins[1]:,} [.7,.8) {bins[2]:,} [.8,.9) {bins[3]:,} "
            f"[.9,1] {bins[4]:,}"
        )
        print(
            f"{'THRESHOLD':>9} {'bands x rows':>12} {'recall@T+.1':>11} {'pairs':>6} "
            f"{'recall@T':>9} {'precision':>9} {'merged':>7} {'min J':>6} {'<=T-.3':>6} "
            f"{'seconds':>7}"
        )
        results = {}
        for t in (0.6, 0.7, 0.8, 0.9):
            q = quality(ids, created, texts, sets, truth, t)
            results[t] = q
            p = lsh_params(t)
            print(
                f"{t:>9} {f'{p.bands} x {p.rows}':>12} {q['recall_hi']:>11.4f} "
                f"{q['pairs_hi']:>6,} {q['recall_at']:>9.4f} {q['precision']:>9.4f} "
                f"{q['merged']:>7,} {q['min_merged_j']:>6.3f} {q['wrong']:>6} "
                f"{q['seconds']:>7.2f}"
            )
        q = results[0.8]
        hist = np.histogram(q["merged_j"], bins=[0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01])[0]
        print(
            "at 0.8, merged pairs by true Jaccard: "
            + ", ".join(
                f"[{a},{b}) {n}"
                for a, b, n in zip(
                    (0, 0.5, 0.6, 0.7, 0.8, 0.9), (0.5, 0.6, 0.7, 0.8, 0.9, 1), hist, strict=True
                )
            )
        )

        # The CLI on the same posts: the same removals, and what the stages cost in a run.
        src = tmp / "posts"
        src.mkdir()
        half = len(ids) // 2
        write_posts(src / "a.jsonl", ids[:half], created[:half], texts[:half])
        write_posts(src / "b.jsonl", ids[half:], created[half:], texts[half:])
        t_plain, _ = ingest(src, tmp / "plain")
        t_near, _ = ingest(src, tmp / "near", "--dedup-near", "0.8")
        cli = near_file(tmp / "near")
        print(
            f"CLI --dedup-near 0.8 on the same posts: removed {len(cli):,} "
            f"({'the same as' if cli == q['removed'] else 'NOT the same as'} in process); "
            f"{t_near:.2f} s against {t_plain:.2f} s without (+{t_near - t_plain:.2f} s)"
        )

        # datatrove on the same texts.
        dt_src = tmp / "dt-src"
        dt_src.mkdir()
        for name, sl in (("a", slice(0, half)), ("b", slice(half, None))):
            with open(dt_src / f"{name}.jsonl", "wb") as f:
                for pid, text in zip(ids[sl], texts[sl], strict=True):
                    f.write(orjson.dumps({"id": pid, "text": text}) + b"\n")
        peer = datatrove(dt_src, tmp / "dt", args.workers, Path(args.peer))
        if peer:
            t_peer, theirs = peer
            print(
                f"datatrove MinHash dedup (4 stages, word 5-grams, 14x8): {t_peer:.2f} s; "
                f"ours in the pipeline +{t_near - t_plain:.2f} s, the whole ingest {t_near:.2f} s"
            )
            print("  " + agreement(q["removed"], theirs, ids))
            dt_removed = {p for p, (_, r) in theirs.items() if r}
            index = {p: i for i, p in enumerate(ids)}
            only = [p for p in dt_removed if p not in q["removed"]]
            if only:
                # what datatrove removes that we keep: its closest earlier cluster mate
                js = []
                for p in only[:2000]:
                    c = theirs[p][0]
                    mates = [m for m, (cc, r) in theirs.items() if cc == c and not r]
                    js += [max((jaccard_of(sets, index, p, m) for m in mates), default=0)]
                print(
                    f"  removed by datatrove only: {len(only):,}; their true Jaccard to the "
                    f"kept post of their cluster: median {np.median(js):.2f}, "
                    f"{np.mean(np.array(js) < 0.5):.0%} below 0.5"
                )

        # Cost at scale.
        if args.cost_lines:
            data = Path(args.data) if args.data else tmp / "firehose"
            files = sorted(str(p) for p in data.glob("*.jsonl")) if data.exists() else []
            if len(files) != args.files:
                shutil.rmtree(data, ignore_errors=True)
                files = write_firehose(str(data), lines=args.cost_lines, files=args.files)
            print(f"cost: {len(files)} files, {args.cost_lines:,} lines; load {os.getloadavg()}")
            # Pairs one after the other, the median reported: one pair on a quiet machine
            # still varied from +19% to +36% (other processes, the page cache, the CPU's clock).
            ratios = []
            for _ in range(args.cost_pairs):
                warm(files)  # each pair reads the input from the page cache (``_page_cache``)
                t_off, r_off = ingest(data, tmp / "cost")
                t_on, r_on = ingest(data, tmp / "cost", "--dedup-near", "0.8")
                ratios.append(t_on / t_off - 1)
                near = r_on["deduplicated_by_reason"].get("near_duplicate", 0)
                print(
                    f"ingest posts: {t_off:.1f} s without, {t_on:.1f} s with --dedup-near 0.8: "
                    f"{ratios[-1]:+.1%}; written {r_off['records_written']:,} / "
                    f"{r_on['records_written']:,}, near_duplicate {near:,}; "
                    f"load {os.getloadavg()}"
                )
            print(
                f"--dedup-near 0.8 cost: median {np.median(ratios):+.1%} of {len(ratios)} pairs "
                f"(target <= +30%)"
            )


if __name__ == "__main__":
    main()
