"""The schemas of the side files ``--dedup-near`` writes (``transforms.posts.near_dup``).

``minhash/<run_id>-<name>.parquet``: the MinHash signature of every post a run wrote, so later
runs compare new posts with committed ones without hashing those again.
Signatures of different schemes estimate nothing against each other, so a ``minhash/`` file
names the scheme that computed it in its schema's metadata (``MINHASH_SCHEME_KEY``); files
without it predate the scheme of ``transforms.posts.minhash`` (64 multiply-add-shift
permutations) and are refused, not compared (``transforms.posts.dedup_near``).
``near_duplicates/<run_id>.parquet``: every post a run removed as a near-duplicate, with the
kept post it is a near-duplicate of. Both are listed by the version that wrote them and by every
later one (``Manifest.side_files``).
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "MINHASH_SCHEMA",
    "MINHASH_SCHEME",
    "MINHASH_SCHEME_KEY",
    "NEAR_DUPLICATES_SCHEMA",
    "SIGNATURE_TYPE",
]

# transforms.posts.minhash.SIGNATURE_SIZE values of 32 bits.
SIGNATURE_TYPE = pa.list_(pa.uint32(), 64)
# What transforms.posts.minhash computes: one-permutation hashing, 64 bins, densified. Change
# it with any change that changes a signature.
MINHASH_SCHEME = "oph64-v1"
MINHASH_SCHEME_KEY = b"shardsmith.minhash_scheme"

MINHASH_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("author_id", pa.string()),
        # The first id of the post's edit history (its own id when it has none): versions of
        # one post are never near-duplicates of each other.
        pa.field("edit_root", pa.string(), nullable=False),
        pa.field("minhash", SIGNATURE_TYPE, nullable=False),
    ],
    metadata={MINHASH_SCHEME_KEY: MINHASH_SCHEME.encode()},
)

NEAR_DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("kept_post_id", pa.string(), nullable=False),
        pa.field("kept_created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("estimated_jaccard", pa.float32(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)
