"""Per-process caches validated by version keys in the shared cache (Redis).

A value that every request needs (the API key and its account, an account's approved
sender IDs, the price rules) is kept in the process, tagged with the version read from
Redis *before* it was loaded from the database. A request reads the current version in the
round trip it makes to Redis anyway (the rate-limit pipeline, ``mifumo.counters``) and uses
an entry only when its tag still matches; otherwise it loads the value again.

A change bumps the version twice: right away (inside the changing transaction) and again
when the transaction commits, so a process that loaded the old value in between is told
too. A bump writes a random number rather than incrementing a counter: a counter restarts
at 1 when Redis loses its data and could come back to a value an old entry was tagged with;
a random number does not (an INCR by hand still changes it). A missing version key (never
bumped, expired, evicted) reads as ``None``, which is a version like any other.

Two safety nets: entries live at most ``max_age`` seconds, and a cache holds at most
``max_entries`` (least recently used first out). A process that cannot read the versions
uses no entry: it loads from the database, as without the cache.

Versions read by the current API request are kept in a context variable (``validated``),
so code deep in a request (sender IDs, prices) can use its cache without another round trip;
outside such a request nothing is known and those callers load from the database.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from django.core.cache import caches
from django.db import transaction

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

VERSION_SECONDS = 7 * 24 * 3600


class _Unverified:
    """The tag of an entry loaded without a version read before it: never current."""

    def __repr__(self) -> str:
        return "UNVERIFIED"


UNVERIFIED: Final = _Unverified()
Version = str | None
Tag = Version | _Unverified


@dataclass(frozen=True)
class Entry(Generic[V]):
    value: V
    version: Tag
    loaded_at: float

    def current(self, version: Version) -> bool:
        return is_current(self.version, version)


def is_current(tag: Tag, version: Version) -> bool:
    """Whether a value tagged ``tag`` is current when the version read is ``version``."""
    return not isinstance(tag, _Unverified) and tag == version


class VersionedCache(Generic[K, V]):
    """A bounded, thread-safe map of entries, each tagged with the version it was loaded
    under. The caller compares tags with the versions it read (``Entry.current``)."""

    def __init__(self, *, max_entries: int, max_age: float) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[K, Entry[V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> Entry[V] | None:
        """The entry, unless missing or older than ``max_age`` (then it is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry.loaded_at > self.max_age:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: K, value: V, version: Tag) -> None:
        with self._lock:
            self._entries[key] = Entry(value, version, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def redis_key(name: str) -> str:
    """The full Redis key of a version (the Django cache's prefix and version applied)."""
    cache: Any = caches["default"]
    return str(cache.make_and_validate_key(f"ver:{name}"))


def decode(value: bytes | str | None) -> Version:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def bump(names: Iterable[str]) -> None:
    """Give each version a new random value now. Logged, not raised, when Redis is
    unreachable: processes that cannot read the versions do not use their entries, and
    those that can see the change within the entries' ``max_age``."""
    names = list(names)
    if not names:
        return
    cache: Any = caches["default"]
    try:
        client = cache._cache.get_client(write=True)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.set(redis_key(name), secrets.randbits(62), ex=VERSION_SECONDS)
        pipe.execute()
    except Exception:  # noqa: BLE001 - the change itself stands; see the docstring
        logger.warning("could not bump cache versions %s", names, exc_info=True)


def bump_now_and_on_commit(names: Iterable[str]) -> None:
    """Bump now (a process loading the old value from here on is told at its next request)
    and again when the current transaction commits (one that loaded it between the two
    bumps is told too). Outside a transaction the second bump runs at once."""
    names = list(names)
    bump(names)
    transaction.on_commit(lambda: bump(names))


_request_versions: list[str] = []


def read_in_every_request(name: str) -> None:
    """A version every API request reads (a global one, e.g. the price rules')."""
    if name not in _request_versions:
        _request_versions.append(name)


def request_versions() -> list[str]:
    return list(_request_versions)


_validated: contextvars.ContextVar[Mapping[str, Version] | None] = contextvars.ContextVar(
    "mifumo_validated_versions", default=None
)


def begin_request() -> contextvars.Token[Mapping[str, Version] | None]:
    """Start a request with no versions known; pass the token to ``end_request``."""
    return _validated.set(None)


def end_request(token: contextvars.Token[Mapping[str, Version] | None]) -> None:
    _validated.reset(token)


def set_validated(versions: Mapping[str, Version]) -> None:
    """The versions this request read from Redis, by name."""
    _validated.set(dict(versions))


def validated(name: str) -> tuple[bool, Version]:
    """(True, version) when the current request read this version; (False, None) when it
    did not (outside an API request, or Redis could not be read)."""
    versions = _validated.get()
    if versions is None or name not in versions:
        return False, None
    return True, versions[name]
