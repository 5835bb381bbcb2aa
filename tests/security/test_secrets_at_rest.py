"""Signing secrets are stored encrypted, including in the responses kept to answer a repeated
Idempotency-Key: the replay still hands back the same secret."""

from __future__ import annotations

import pytest

from integration.models import IdempotencyRecord
from tests.helpers import Api, assert_envelope
from tests.security.test_keys import _database_text

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/in"


def _secret_parts(secret: str) -> list[str]:
    # The whole secret and its random part, either of which would do for a forger.
    return [secret, secret.removeprefix("whsec_")]


def test_secrets_in_replayable_responses_are_not_stored_in_plaintext(api: Api) -> None:
    created = api.post("webhooks/", {"url": URL}, HTTP_IDEMPOTENCY_KEY="s-1")
    endpoint = assert_envelope(created, 201)["data"]
    rotated = api.post(f"webhooks/{endpoint['id']}/rotate-secret/", {}, HTTP_IDEMPOTENCY_KEY="s-2")
    account = api.post("webhooks/signing-secret/rotate/", {}, HTTP_IDEMPOTENCY_KEY="s-3")
    secrets = [
        endpoint["secret"],
        assert_envelope(rotated, 200)["data"]["secret"],
        assert_envelope(account, 200)["data"]["secret"],
    ]
    assert IdempotencyRecord.objects.count() == 3
    stored = _database_text()
    for secret in secrets:
        for part in _secret_parts(secret):
            assert part not in stored, f"a signing secret is stored in plaintext: {secret[:9]}…"


def test_the_replay_still_carries_the_secret(api: Api) -> None:
    first = api.post("webhooks/", {"url": URL}, HTTP_IDEMPOTENCY_KEY="s-4")
    again = api.post("webhooks/", {"url": URL}, HTTP_IDEMPOTENCY_KEY="s-4")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert assert_envelope(again, 201)["data"]["secret"].startswith("whsec_")
    rotated = api.post("webhooks/signing-secret/rotate/", {}, HTTP_IDEMPOTENCY_KEY="s-5")
    replayed = api.post("webhooks/signing-secret/rotate/", {}, HTTP_IDEMPOTENCY_KEY="s-5")
    assert replayed.json() == rotated.json()
    # A replay with another body is still refused.
    other = api.post("webhooks/", {"url": URL + "/other"}, HTTP_IDEMPOTENCY_KEY="s-4")
    assert_envelope(other, 409, "CONFLICT")


def test_replies_without_secrets_are_kept_as_they_are(api: Api) -> None:
    # Only responses that carry a secret are sealed; the others stay readable for support.
    api.post(
        "contacts/create/",
        {"name": "Asha", "phone_number": "+255754000001"},
        HTTP_IDEMPOTENCY_KEY="c-1",
    )
    record = IdempotencyRecord.objects.get(key="c-1")
    assert record.response_body["data"]["name"] == "Asha"
