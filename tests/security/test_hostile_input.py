"""Broken and hostile request bodies: always a clean 4xx envelope, never half a write."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.conf import settings

from contacts.models import Contact
from integration.models import Account, LedgerEntry
from segments.models import Segment
from sms.models import Message, Recipient
from tests.helpers import Api, assert_envelope
from tests.security import seed
from webhooks.models import Delivery, Endpoint, Event

SEND = "sms/send/"
CONTACT = "contacts/create/"
SEGMENT = "contacts/segments/create/"
WEBHOOK = "webhooks/"

VALID: dict[str, dict[str, Any]] = {
    SEND: {"message": "Habari", "recipients": ["+255712345678"], "sender_id": "MIFUMO"},
    CONTACT: {"name": "Asha", "phone_number": "+255754000001", "email": "a@example.com"},
    SEGMENT: {"name": "VIP", "description": "best", "criteria": {"tags": ["vip"]}},
    WEBHOOK: {"url": "https://hooks.example.com/in", "description": "ours"},
}

# Every field each endpoint takes, so that none is left out of the type checks.
FIELDS: dict[str, list[str]] = {
    SEND: ["message", "recipients", "sender_id", "schedule_time", "webhook_url", "segment_ids"],
    CONTACT: ["name", "phone_number", "email", "tags", "is_active"],
    SEGMENT: ["name", "description", "criteria"],
    WEBHOOK: ["url", "events", "active", "description"],
}

WRONG_VALUES: list[Any] = [
    12345,
    -1.5,
    True,
    None,
    [],
    ["x", 1],
    {},
    {"nested": {"deep": [1, 2]}},
    "",
    "x" * 5000,
]

SQL = "'; DROP TABLE contacts_contact; -- \" OR 1=1 /*"
HTML = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _rows() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Message, Recipient, Contact, Segment, Endpoint, Event, Delivery, LedgerEntry)
    }


@pytest.fixture
def hostile(alice: Account, api: Api) -> Api:
    # Limits must not turn the many requests below into 429s.
    Account.objects.filter(pk=alice.pk).update(
        api_per_hour=100_000, sms_per_minute=100_000, contacts_per_hour=100_000
    )
    return api


def _raw_post(api: Api, path: str, body: bytes | str, content_type: str) -> Any:
    # Bytes go out untouched (the stubs say str), so invalid UTF-8 reaches the parser.
    return api.client.generic(
        "POST",
        f"{settings.MIFUMO_API_PREFIX}{path}",
        body,  # type: ignore[arg-type]
        content_type=content_type,
    )


@pytest.mark.parametrize("path", list(VALID))
@pytest.mark.parametrize(
    "body",
    [
        b'{"message": "unterminated',
        b"{'single': 'quotes'}",
        b'{"a": 1,}',
        b"\xff\xfe\x00garbage",
        b"NaN",
        b"[]",
        b"null",
        b'"a string"',
        b"42",
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    ],
    ids=lambda b: repr(b[:20]),
)
def test_malformed_json_is_a_validation_error(hostile: Api, path: str, body: bytes) -> None:
    before = _rows()
    response = _raw_post(hostile, path, body, "application/json")
    assert_envelope(response, 400, "VALIDATION_ERROR")
    assert _rows() == before


@pytest.mark.parametrize("path", list(VALID))
def test_other_media_types_are_refused(hostile: Api, path: str) -> None:
    before = _rows()
    for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        response = _raw_post(hostile, path, json.dumps(VALID[path]), content_type)
        assert response.status_code in {400, 415}, (content_type, response.status_code)
        assert_envelope(response, response.status_code, response.json()["error_code"])
    assert _rows() == before


@pytest.mark.parametrize("path", list(VALID))
def test_wrong_types_in_every_field(hostile: Api, path: str) -> None:
    for field in FIELDS[path]:
        for value in WRONG_VALUES:
            before = _rows()
            response = hostile.post(path, {**VALID[path], field: value})
            status = response.status_code
            assert status < 500, (field, value, status, response.content[:300])
            body = assert_envelope(response, status, response.json()["error_code"])
            if status >= 400:
                assert _rows() == before, (field, value)
                assert body["message"]
            if isinstance(value, dict) and value and field != "criteria":
                assert status == 400, (field, value, status)
            if status < 400:
                _undo(path, body["data"])


def _undo(path: str, data: dict[str, Any]) -> None:
    """Remove what an accepted variant created, so the next one can reuse the same phone
    number or name."""
    if path == CONTACT:
        Contact.objects.filter(pk=data["id"]).delete()
    elif path == SEGMENT:
        Segment.objects.filter(pk=data["id"]).delete()
    elif path == WEBHOOK:
        Endpoint.objects.filter(pk=data["id"]).delete()


@pytest.mark.parametrize("path", list(VALID))
def test_huge_bodies_are_refused_before_parsing(hostile: Api, path: str) -> None:
    before = _rows()
    filler = "x" * (settings.MIFUMO_MAX_BODY_BYTES + 1)
    response = hostile.post(path, {**VALID[path], "name": filler, "message": filler})
    body = assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["details"]["limit"] == settings.MIFUMO_MAX_BODY_BYTES
    assert _rows() == before


def test_a_hundred_thousand_recipients_are_refused_quickly(hostile: Api) -> None:
    recipients = [f"+2557{n:08d}" for n in range(100_000)]
    before = _rows()
    started = time.perf_counter()
    response = hostile.post(SEND, {"message": "Habari", "recipients": recipients})
    elapsed = time.perf_counter() - started
    assert_envelope(response, 400, "TOO_MANY_RECIPIENTS")
    assert elapsed < 3.0, elapsed
    assert _rows() == before


@pytest.mark.parametrize(
    "text",
    [
        "\u202eRTL override \u202c مرحبا بالعالم",
        "Emoji 👋🏽👨‍👩‍👧 ✅",
        "Bell\x07 tab\t vertical\x0b escape\x1b[31m red",
        "zero\u200bwidth\ufeffbom",
        "שלום עולם \u200f",
    ],
)
def test_control_characters_and_scripts_are_stored_literally(hostile: Api, text: str) -> None:
    response = hostile.post(SEND, {**VALID[SEND], "message": text})
    data = assert_envelope(response, 200)["data"]
    assert Message.objects.get(pk=data["message_id"]).text == text
    response = hostile.post(CONTACT, {**VALID[CONTACT], "name": text})
    data = assert_envelope(response, 201)["data"]
    assert Contact.objects.get(pk=data["id"]).name == text
    assert hostile.get(f"contacts/{data['id']}/").json()["data"]["name"] == text


@pytest.mark.parametrize("path", [SEND, CONTACT, SEGMENT, WEBHOOK])
def test_nul_bytes_never_reach_the_database_as_a_500(hostile: Api, path: str) -> None:
    # PostgreSQL text columns cannot hold NUL; the answer must be a 4xx or a stored value.
    for field in FIELDS[path]:
        if not isinstance(VALID[path].get(field), str):
            continue
        before = _rows()
        response = hostile.post(path, {**VALID[path], field: f"a\x00b{VALID[path][field]}"})
        assert response.status_code < 500, (field, response.content[:300])
        body = assert_envelope(response, response.status_code, response.json()["error_code"])
        if response.status_code >= 400:
            assert _rows() == before
        else:
            _undo(path, body["data"])


@pytest.mark.parametrize("payload", [SQL, HTML])
def test_sql_and_html_are_stored_literally(hostile: Api, payload: str) -> None:
    response = hostile.post(SEND, {**VALID[SEND], "message": payload[:150]})
    message = assert_envelope(response, 200)["data"]
    assert Message.objects.get(pk=message["message_id"]).text == payload[:150]

    # Tags refuse the separators ';' and '|' by design; everything else must survive.
    tag = payload.replace(";", "").replace("|", "")[:30]
    response = hostile.post(CONTACT, {**VALID[CONTACT], "name": payload, "tags": [tag, "ok"]})
    contact = assert_envelope(response, 201)["data"]
    stored = Contact.objects.get(pk=contact["id"])
    assert stored.name == payload
    assert tag.strip().lower() in stored.tags

    response = hostile.post(
        SEGMENT, {"name": payload[:100], "description": payload, "criteria": {}}
    )
    segment = assert_envelope(response, 201)["data"]
    assert Segment.objects.get(pk=segment["id"]).description == payload

    response = hostile.post(WEBHOOK, {**VALID[WEBHOOK], "description": payload})
    endpoint = assert_envelope(response, 201)["data"]
    assert Endpoint.objects.get(pk=endpoint["id"]).description == payload

    search = hostile.get("contacts/search/", {"q": payload})
    assert_envelope(search, 200)
    assert Contact.objects.count() == 1
    assert hostile.get(f"contacts/segments/{segment['id']}/").json()["data"]["description"] == (
        payload
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in\r\nX-Injected: 1",
        "https://hooks.example.com/in\nSet-Cookie: a=b",
        "https://hooks.example.com/in\rX: y",
        "https://hooks.example.com\r\n/in",
        "https://hooks.example.com/in\x00",
        "https://hooks.exa mple.com/in",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
    ],
)
def test_header_injection_in_webhook_urls_is_refused(hostile: Api, url: str) -> None:
    before = _rows()
    assert_envelope(hostile.post(WEBHOOK, {**VALID[WEBHOOK], "url": url}), 400, "VALIDATION_ERROR")
    response = hostile.post(SEND, {**VALID[SEND], "webhook_url": url})
    assert_envelope(response, 400, "VALIDATION_ERROR")
    assert _rows() == before

    created = assert_envelope(hostile.post(WEBHOOK, VALID[WEBHOOK]), 201)["data"]
    response = hostile.patch(f"webhooks/{created['id']}/", {"url": url})
    assert_envelope(response, 400, "VALIDATION_ERROR")
    assert Endpoint.objects.get(pk=created["id"]).url == VALID[WEBHOOK]["url"]


@pytest.mark.parametrize(
    "path",
    [
        "sms/delivery-reports/",
        "sms/messages/",
        "contacts/search/",
        "webhooks/deliveries/",
        "webhooks/{webhook}/deliveries/",
        "contacts/segments/{segment}/contacts/",
    ],
)
@pytest.mark.parametrize(
    "params",
    [
        {"page": str(2**63)},
        {"page": "99999999999999999999999"},
        {"per_page": str(2**63)},
        {"offset": str(2**63)},
        {"limit": str(2**63)},
        {"page": "-1"},
        {"page": "1e9"},
        {"offset": "NaN"},
    ],
    ids=lambda p: "&".join(f"{k}={v[:8]}" for k, v in p.items()),
)
def test_out_of_range_pagination_is_refused(
    hostile: Api, alice: Account, path: str, params: dict[str, str]
) -> None:
    owned = seed(alice)
    url = path.format(webhook=owned.endpoint.pk, segment=owned.segment.pk)
    response = hostile.get(url, params)
    assert response.status_code in {200, 400}, (url, params, response.content[:300])
    assert_envelope(response, response.status_code, response.json()["error_code"])
