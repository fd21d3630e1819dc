"""Dropping, as a source is parsed, the repeats of a post that resolving would drop anyway.

Popular posts come back again and again in a stream (every repost of one inlines it), so a
source holds many rows of one post id. ``resolve_bucket`` keeps, of the rows of one post id, the
most complete one (``row_score``), then the first by source and line. A later row of the same
source with the same id and edit history (so the same bucket) and no higher score can never be
that one: it is counted ``deduplicated:post_id`` here instead of being converted, staged,
shuffled and resolved for nothing. The datasets written are the same either way.
"""

from __future__ import annotations

__all__ = ["SeenPosts"]


class SeenPosts:
    """The posts of one source kept so far: (post id, edit history) -> best score.

    Forgetting only costs speed (a forgotten repeat goes on to be resolved as before), so the
    table is emptied whenever it reaches ``limit`` entries: memory stays bounded on any source.
    """

    def __init__(self, limit: int = 500_000):
        self._limit = limit
        self._best: dict[tuple[str, ...], int] = {}

    def is_repeat(self, key: tuple[str, ...], score: int) -> bool:
        """True if an earlier row of this source makes a row of ``key`` (its post id and edit
        history) and ``score`` (``resolve.row_score``) one resolving would drop; otherwise
        remember that row as kept and return False."""
        best = self._best.get(key)
        if best is not None and best >= score:
            return True
        if best is None and len(self._best) >= self._limit:
            self._best.clear()
        self._best[key] = score
        return False
