"""Recognizing X compliance events: every stream form and the lines of batch compliance files.

* Post compliance stream (``/2/tweets/compliance/stream``):
  ``{"data": {"<event>": {"tweet": {"id", "author_id"}, "event_at", ...}}}`` for ``delete``,
  ``withheld`` (+ ``withheld_in_countries``), ``drop``, ``undrop`` and ``tweet_edit``
  (+ ``initial_tweet_id``, ``edit_tweet_ids``).
* User compliance stream (``/2/users/compliance/stream``):
  ``{"data": {"<event>": {"user": {"id"}, "event_at", ...}}}`` for ``user_delete`` /
  ``user_undelete``, ``user_protect`` / ``user_unprotect``, ``user_suspend`` /
  ``user_unsuspend``, ``user_withheld`` (+ ``withheld_in_countries``), ``scrub_geo``
  (+ ``up_to_tweet_id``) and ``user_profile_modification``.
* Batch compliance results: ``{"id", "action", "created_at", "redacted_at", "reason"}`` lines,
  the same shape for post ids and user ids, so the caller says which: the lines of ``ingest
  posts`` sources are post ids (``{"action": "delete"}`` is parsed there), those of
  ``--user-compliance`` files user ids (``user_event``).

An event becomes an ``Event``; what it does to posts is decided later, once every event of the
run is known (``transforms.posts.removals``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

from transforms.posts.errors import RecordError

__all__ = [
    "BLOCKING",
    "EVENTS",
    "POST_EVENTS",
    "UNBLOCKING",
    "USER_EVENTS",
    "Event",
    "event_name",
    "stream_event",
    "user_batch_event",
]

POST_EVENTS = frozenset({"delete", "withheld", "drop", "undrop", "tweet_edit"})
USER_EVENTS = frozenset(
    {
        "user_delete",
        "user_undelete",
        "user_protect",
        "user_unprotect",
        "user_suspend",
        "user_unsuspend",
        "user_withheld",
        "scrub_geo",
        "user_profile_modification",
    }
)
EVENTS = POST_EVENTS | USER_EVENTS
# User events that remove every post of the author, and those that lift the block for posts
# ingested afterwards. ``user_deactivate`` is a batch result's reason (no stream event).
BLOCKING = frozenset({"user_delete", "user_protect", "user_suspend", "user_deactivate"})
UNBLOCKING = frozenset({"user_undelete", "user_unprotect", "user_unsuspend"})
# Batch results name why an id needs action; every one of them means "remove".
_BATCH_REASONS = {
    "deleted": "user_delete",
    "deactivated": "user_deactivate",
    "protected": "user_protect",
    "suspended": "user_suspend",
}


class Event(NamedTuple):
    """One compliance event.

    ``action`` is the stream's event name (batch user lines: ``user_delete``,
    ``user_deactivate``, ``user_protect`` or ``user_suspend`` by reason); ``id`` the post id
    of post events (``tweet_edit``: the latest version), the user id of user events; ``at`` the
    event time in ms since the epoch, or None; ``detail``: ``withheld`` / ``user_withheld``:
    the country codes; ``tweet_edit``: the ids the latest version supersedes; ``scrub_geo``:
    ``(up_to_tweet_id,)``; a batch line: ``(reason,)``.
    """

    action: str
    id: str
    at: int | None = None
    detail: tuple[str, ...] = ()


def event_name(payload: dict) -> str | None:
    """The event a ``data`` object holds: a known name, ``"unknown"`` for an object shaped
    like an event (one key, an object with ``event_at``) of a name not known, else None."""
    for key, body in payload.items():
        if key in EVENTS and type(body) is dict:
            return key
    if len(payload) == 1:
        (body,) = payload.values()
        if type(body) is dict and "event_at" in body:
            return "unknown"
    return None


def stream_event(name: str, body: dict) -> Event:
    """``{"data": {name: body}}`` as an ``Event``; ``RecordError`` naming the field if bad."""
    where = f"data.{name}"
    at = _event_at(body.get("event_at"))
    if name in POST_EVENTS:
        target = body.get("tweet") if type(body.get("tweet")) is dict else body
        if name == "tweet_edit":
            return _edit(body, target, where, at)
        pid = _id(target, f"{where}.tweet.id", required=True)
        countries = _countries(body, where) if name == "withheld" else ()
        return Event(name, pid, at, countries)
    target = body.get("user") if type(body.get("user")) is dict else body
    uid = _id(target, f"{where}.user.id", required=True)
    if name == "user_withheld":
        return Event(name, uid, at, _countries(body, where))
    if name == "scrub_geo":
        return Event(name, uid, at, (_id(body, f"{where}.up_to_tweet_id", required=True),))
    return Event(name, uid, at)


def user_batch_event(obj: dict) -> Event | None:
    """A line of a user batch compliance file (``{"id", "action", "reason", ...}``) as an
    ``Event``; None for an action other than ``delete`` (the caller counts it)."""
    uid = _id(obj, "id", required=True)
    if obj.get("action") != "delete":
        return None
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise RecordError("wrong_type", f"reason: expected a string, got {type(reason).__name__}")
    at = _event_at(obj.get("redacted_at") or obj.get("created_at"))
    # A reason this code does not know still asks for removal: the safe reading.
    action = _BATCH_REASONS.get(reason or "deleted", "user_delete")
    return Event(action, uid, at, (reason or "deleted",))


def _edit(body: dict, target: dict, where: str, at: int | None) -> Event:
    chain = body.get("edit_tweet_ids")
    if not isinstance(chain, list) or not chain or not all(map(_is_id, chain)):
        raise RecordError("wrong_type", f"{where}.edit_tweet_ids: expected a list of ids")
    chain = [str(x) for x in chain]
    latest = _id(target, f"{where}.tweet.id") or chain[-1]
    initial = _id(body, f"{where}.initial_tweet_id")
    older = sorted({*chain, *([initial] if initial else [])} - {latest})
    return Event("tweet_edit", latest, at, tuple(older))


def _countries(body: dict, where: str) -> tuple[str, ...]:
    codes = body.get("withheld_in_countries")
    if not isinstance(codes, list) or not all(isinstance(c, str) and c for c in codes):
        raise RecordError(
            "wrong_type", f"{where}.withheld_in_countries: expected a list of country codes"
        )
    return tuple(sorted(set(codes)))


def _event_at(value: Any) -> int | None:
    # Only orders events of one run (a delete then an undelete); an unreadable time orders as
    # unknown rather than costing the event.
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return int(ts.timestamp() * 1000)
    except (ValueError, OverflowError):
        return None


def _id(obj: dict, name: str, *, required: bool = False) -> str | None:
    value = obj.get(name.rsplit(".", 1)[-1])
    if value is None:
        if required:
            raise RecordError("missing_field", f"{name}: missing")
        return None
    if not _is_id(value):
        raise RecordError("wrong_type", f"{name}: expected an id string")
    return str(value)


def _is_id(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
