"""The README's verification example, run against headers the platform produces."""

from __future__ import annotations

import time

import pytest

from webhooks.signing import generate_secret, signature_header
from webhooks.verify_example import verify

BODY = b'{"event_id":"evt_01","event":"message.delivered"}'


def test_a_fresh_signature_verifies():
    secret = generate_secret()
    header = signature_header([secret], int(time.time()), BODY)
    assert verify(secret, header, BODY)


def test_another_secret_or_another_body_fails():
    secret = generate_secret()
    header = signature_header([secret], int(time.time()), BODY)
    assert not verify(generate_secret(), header, BODY)
    assert not verify(secret, header, BODY.replace(b"delivered", b"failed"))


def test_an_old_signature_is_refused_as_a_replay():
    secret = generate_secret()
    header = signature_header([secret], int(time.time()) - 301, BODY)
    assert not verify(secret, header, BODY)
    assert verify(secret, header, BODY, tolerance=600)


def test_any_of_several_signatures_may_match_during_a_rotation():
    old, new = generate_secret(), generate_secret()
    header = signature_header([new, old], int(time.time()), BODY)
    assert verify(old, header, BODY)
    assert verify(new, header, BODY)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=abc,v1=00",
        "v1=00",
        "t=,v1=",
        f"t={int(time.time())}",
        f"t={int(time.time())},v1=\u00e9\u00e9",
        "t=\u0661\u0662,v1=00",
    ],
)
def test_malformed_headers_fail(header):
    assert not verify(generate_secret(), header, BODY)
