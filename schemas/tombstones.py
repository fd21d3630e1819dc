"""The schema of ``tombstones/`` files: the compliance state a posts dataset has applied.

Each version that changed the state lists one file (``Manifest.tombstones``, with that version),
holding one row per key whose state the version set -- a log: the state at version V is, per
``(target, id)``, the row of the latest version <= V. Removals since version V are the rows of
the files of later versions.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["TOMBSTONES_SCHEMA", "TOMBSTONE_TARGETS"]

# What a row's id names and what its state can be:
#   post            delete | drop | tweet_edit (a superseded version) | lifted (undropped)
#   author          the latest block (user_delete, user_deactivate, user_protect,
#                   user_suspend; ``detail``: every block held) | lifted
#   post_withheld   withheld (``detail``: country codes) | lifted
#   author_withheld user_withheld (``detail``: country codes) | lifted
#   author_geo      scrub_geo (``detail``: [up_to_tweet_id])
TOMBSTONE_TARGETS = ("post", "author", "post_withheld", "author_withheld", "author_geo")

TOMBSTONES_SCHEMA = pa.schema(
    [
        pa.field("target", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("detail", pa.list_(pa.string())),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)
