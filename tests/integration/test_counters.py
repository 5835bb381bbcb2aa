"""The cache helper behind rate limits and the key's last-use mark."""

import uuid
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from mifumo import counters
from mifumo.counters import count_and_mark, count_mark_and_read
from tests.ops.stack import free_port


def test_counts_and_marks_in_one_pipeline() -> None:
    tag = uuid.uuid4().hex
    counters = [(f"c1:{tag}", 60), (f"c2:{tag}", 60)]
    marks = [(f"m:{tag}", 60)]
    assert count_and_mark(counters, marks) == ([1, 1], [True])
    assert count_and_mark(counters, marks) == ([2, 2], [False])
    assert count_and_mark(counters[:1]) == ([3], [])
    assert caches["default"].get(f"c2:{tag}") == 2


def test_keys_expire_after_their_lifetime():
    tag = uuid.uuid4().hex
    count_and_mark([(f"c:{tag}", 7)], [(f"m:{tag}", 9)])
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    counter_ttl = client.ttl(caches["default"].make_and_validate_key(f"c:{tag}"))
    mark_ttl = client.ttl(caches["default"].make_and_validate_key(f"m:{tag}"))
    assert 0 < counter_ttl <= 7 and 0 < mark_ttl <= 9
    # A later hit must not push the expiry out again (a fixed window, not a sliding one).
    client.expire(caches["default"].make_and_validate_key(f"c:{tag}"), 3)
    count_and_mark([(f"c:{tag}", 7)])
    assert client.ttl(caches["default"].make_and_validate_key(f"c:{tag}")) <= 3


def test_reads_ride_along_and_a_missing_key_reads_as_none():
    tag = uuid.uuid4().hex
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    client.set(f"v:{tag}", b"7")
    counts, marks, values = count_mark_and_read(
        [(f"c:{tag}", 60)], [(f"m:{tag}", 60)], [f"v:{tag}", f"missing:{tag}"]
    )
    assert (counts, marks, values) == ([1], [True], [b"7", None])


def test_a_server_that_forgot_the_script_is_given_it_again():
    # A Redis restart (or SCRIPT FLUSH) empties the server's script cache.
    tag = uuid.uuid4().hex
    assert count_and_mark([(f"c:{tag}", 60)]) == ([1], [])
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    client.script_flush()
    assert count_and_mark([(f"c:{tag}", 60)]) == ([2], [])


class Ride:
    def __init__(self, key: str, told: list[bool | None]) -> None:
        self.key, self.seconds, self.told = key, 60, told

    def done(self, newly_set: bool | None) -> None:
        self.told.append(newly_set)


class Rider:
    """Owes its mark ``times`` times."""

    def __init__(self, key: str, times: int) -> None:
        self.key, self.times = key, times
        self.told: list[bool | None] = []

    def take(self) -> Ride | None:
        if not self.times:
            return None
        self.times -= 1
        return Ride(self.key, self.told)


@pytest.fixture
def rider(monkeypatch: pytest.MonkeyPatch) -> Rider:
    """A rider of this test's own, alone on the list."""
    monkeypatch.setattr(counters, "_riders", [])
    owed = Rider(f"ride:{uuid.uuid4().hex}", times=2)
    counters.add_rider(owed)
    return owed


def test_a_riders_mark_is_set_by_the_next_round_trip_and_reported(rider: Rider) -> None:
    tag = uuid.uuid4().hex
    # The caller's own counts and marks come back as if the rider were not there.
    assert count_mark_and_read([(f"c:{tag}", 60)], [(f"m:{tag}", 60)]) == ([1], [True], [])
    assert rider.told == [True]
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    key = caches["default"].make_and_validate_key(rider.key)
    assert client.get(key) == b"1" and 0 < client.ttl(key) <= 60
    assert count_and_mark([(f"c:{tag}", 60)]) == ([2], [])
    assert rider.told == [True, False]  # already set
    # Nothing owed: nothing rides.
    assert count_and_mark([(f"c:{tag}", 60)]) == ([3], [])
    assert rider.told == [True, False]


def test_a_failed_round_trip_tells_the_rider_nothing_is_known(rider: Rider, settings: Any) -> None:
    dead = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    with override_settings(CACHES={"default": dead}), pytest.raises(redis.ConnectionError):
        count_and_mark([(f"c:{uuid.uuid4().hex}", 60)])
    assert rider.told == [None]
