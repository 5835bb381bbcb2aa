"""The cache helper behind rate limits and the key's last-use mark."""

import uuid

from django.core.cache import caches

from mifumo.counters import count_and_mark, count_mark_and_read


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
