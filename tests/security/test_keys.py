"""Raw API keys stay secret: not stored, not logged, not echoed; guessing them is slow and
tells nothing through timing."""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from integration import keys
from integration.models import Account, Permission
from integration.services import api_key_revoke
from mifumo.logging import JsonFormatter
from sms import apis as sms_apis
from tests.helpers import Api, assert_envelope

BALANCE = f"{settings.MIFUMO_API_PREFIX}sms/balance/"


def _database_text() -> str:
    """Every value in every table, as text."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                chunks.append(" ".join(_text(value) for value in row))
    return "\n".join(chunks)


def _text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def _secret_parts(raw: str) -> list[str]:
    # The whole key, and its secret body past the indexed prefix, which alone would be enough
    # to rebuild it.
    return [raw, raw.rsplit("_", 1)[1][keys.LOOKUP_CHARS :]]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        plain = logging.Formatter("%(name)s %(levelname)s %(message)s")
        structured = JsonFormatter()
        for record in self.records:
            yield plain.format(record)
            yield structured.format(record)
            yield repr(record.__dict__)
            if record.exc_info and record.exc_info[1] is not None:
                yield "".join(traceback.format_exception(record.exc_info[1]))


@pytest.fixture
def captured() -> Iterator[_Capture]:
    handler = _Capture()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(levels[logger])


def _boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("simulated failure")


def test_raw_keys_never_reach_the_database_logs_or_error_bodies(
    alice: Account, make_key: Any, captured: _Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = make_key(alice, Permission.ADMIN)
    sandbox = make_key(alice, Permission.WRITE, test=True)
    revoked = make_key(alice, Permission.READ)
    api_key_revoke(api_key=revoked.api_key)
    unknown = keys.generate(test=False)
    secrets = [live.raw, sandbox.raw, revoked.raw, unknown]
    bodies: list[str] = []

    admin = Api(live.raw)
    created = admin.post("keys/create/", {"name": "made here"})
    made = assert_envelope(created, 201)["data"]
    rotated = admin.post(f"keys/{made['id']}/rotate/", {})
    secrets += [made["key"], assert_envelope(rotated, 200)["data"]["key"]]

    Account.objects.filter(pk=alice.pk).update(api_per_hour=100_000, sms_per_minute=100_000)
    send = {"message": "Habari", "recipients": ["+255712345678"], "sender_id": "MIFUMO"}
    for raw in (live.raw, sandbox.raw):
        api = Api(raw)
        response = api.post("sms/send/", {**send, "webhook_url": "https://hooks.example.com/in"})
        assert_envelope(response, 200)
        bodies.append(api.get("sms/balance/").content.decode())
    for raw in (revoked.raw, unknown, live.raw[:-1] + "!", "mif_live_short"):
        response = Api(raw).get("sms/balance/")
        assert_envelope(response, 401, "INVALID_CREDENTIALS")
        bodies.append(response.content.decode())

    monkeypatch.setattr(sms_apis.BalanceApi, "get", _boom)
    for raw in (live.raw, sandbox.raw):
        response = Api(raw).get("sms/balance/")
        assert_envelope(response, 500, "INTERNAL_ERROR")
        bodies.append(response.content.decode())

    stored = _database_text()
    logged = "\n".join(captured.texts())
    assert any("simulated failure" in text for text in captured.texts())
    for raw in secrets:
        for part in _secret_parts(raw):
            assert part not in stored, f"raw key material stored: {raw[:13]}…"
            assert part not in logged, f"raw key material logged: {raw[:13]}…"
            assert all(part not in body for body in bodies)


def test_keys_issued_under_an_idempotency_key_are_not_kept_in_plaintext(api: Api) -> None:
    # A replayed response is read back from the database, so whatever it holds is stored.
    created = api.post("keys/create/", {"name": "made here"}, HTTP_IDEMPOTENCY_KEY="k-1")
    made = assert_envelope(created, 201)["data"]
    rotated = api.post(f"keys/{made['id']}/rotate/", {}, HTTP_IDEMPOTENCY_KEY="k-2")
    stored = _database_text()
    for raw in (made["key"], assert_envelope(rotated, 200)["data"]["key"]):
        for part in _secret_parts(raw):
            assert part not in stored, f"raw key material stored: {raw[:13]}…"


def test_failed_authentication_is_rate_limited_per_address(alice: Account, api: Api) -> None:
    limit, window = settings.MIFUMO_RATE_ANONYMOUS
    attacker = APIClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(limit):
        guess = keys.generate(test=False)
        response = attacker.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {guess}")
        assert_envelope(response, 401, "INVALID_CREDENTIALS")
    response = attacker.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {keys.generate(test=False)}")
    body = assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(response["Retry-After"]) <= window
    assert body["details"]["bucket"] == "anonymous"
    # Malformed headers and missing ones count against the same address.
    response = attacker.get(BALANCE, HTTP_AUTHORIZATION="Basic abc")
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert_envelope(attacker.get(BALANCE), 429, "RATE_LIMIT_EXCEEDED")

    elsewhere = APIClient(REMOTE_ADDR="198.51.100.20")
    response = elsewhere.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {keys.generate(test=False)}")
    assert_envelope(response, 401, "INVALID_CREDENTIALS")
    # A valid key is counted per account, not per address.
    response = api.client.get(BALANCE, REMOTE_ADDR="203.0.113.7")
    assert_envelope(response, 200)


def test_comparison_uses_compare_digest() -> None:
    source = inspect.getsource(keys.matches)
    assert "hmac.compare_digest(" in source
    assert "==" not in source


def test_unknown_prefix_and_revoked_keys_still_compute_a_digest(
    alice: Account, make_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[str, str]] = []
    real_matches = keys.matches

    def counting(raw: str, stored: str) -> bool:
        compared.append((raw, stored))
        return real_matches(raw, stored)

    monkeypatch.setattr(keys, "matches", counting)
    good = make_key(alice, Permission.READ)
    revoked = make_key(alice, Permission.READ)
    api_key_revoke(api_key=revoked.api_key)
    unknown = keys.generate(test=False)
    same_prefix = good.raw[:-4] + ("aaaa" if not good.raw.endswith("aaaa") else "bbbb")

    for raw, status in ((unknown, 401), (same_prefix, 401), (revoked.raw, 401), (good.raw, 200)):
        compared.clear()
        response = Api(raw).get("sms/balance/")
        assert response.status_code == status, raw[:13]
        assert len(compared) == 1, raw[:13]
        assert len(compared[0][1]) == 64
    compared.clear()
    assert_envelope(Api("mif_live_" + "x" * 5).get("sms/balance/"), 401, "INVALID_CREDENTIALS")
    # Refused by its shape alone, which depends on nothing secret.
    assert compared == []


def test_unknown_and_wrong_keys_answer_alike(alice: Account, make_key: Any) -> None:
    good = make_key(alice, Permission.READ)
    unknown = Api(keys.generate(test=False)).get("sms/balance/").json()
    near = Api(good.raw[:-1] + ("A" if good.raw[-1] != "A" else "B")).get("sms/balance/").json()
    assert unknown == near
