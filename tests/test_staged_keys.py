"""A staged chunk's resolution keys: one reference a chunk, one record batch a bucket."""

from __future__ import annotations

import pickle

from tablegen import posts_table

from catalog.staging import read_staged
from catalog.storage import open_url
from transforms.posts.parse_posts import ParsedChunk
from transforms.posts.rows import bucket_of, edit_roots
from transforms.posts.stage_posts import StagedKeys, stage_chunk


def test_each_bucket_finds_its_keys_in_the_chunks_one_reference(tmp_path):
    fs, root = open_url(str(tmp_path))
    posts = posts_table(300)
    buckets = 16
    staged = stage_chunk(fs, root, "run", ParsedChunk(posts, [], [], {}), buckets)
    assert isinstance(staged.keys, StagedKeys)
    assert list(staged.keys.buckets) == sorted(set(staged.keys.buckets))  # of_bucket bisects
    seen = []
    for bucket in range(buckets):
        ref = staged.keys.of_bucket(bucket)
        if ref is None:
            assert bucket not in staged.keys.buckets
            continue
        keys = read_staged(fs, root, ref)
        assert keys.num_rows > 0
        assert {bucket_of(root_id, buckets) for root_id in edit_roots(keys)} == {bucket}
        seen += keys.column("post_id").to_pylist()
    assert sorted(seen) == sorted(posts.column("post_id").to_pylist())  # each post once
    # Crossing the shuffle, a chunk's reference stays small whatever the number of buckets.
    assert len(pickle.dumps(staged.keys)) < 300


def test_a_chunk_without_posts_stages_no_keys(tmp_path):
    fs, root = open_url(str(tmp_path))
    empty = posts_table(0)
    staged = stage_chunk(fs, root, "run", ParsedChunk(empty, [], [], {"records_in": 1}), 8)
    assert staged.keys is None and staged.tally == {"records_in": 1}
