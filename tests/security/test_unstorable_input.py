"""Input that no database column can hold, or no clock can name, is a 400 naming the field,
never a 500: lone surrogates and NUL in every string field, query parameter and path id of
the API, UTC offsets no zone has, and dates that leave the calendar once made UTC.

The table is built from the OpenAPI schema, so a field added later is covered too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from integration.members import membership_add
from integration.models import Account, LedgerEntry
from segments.models import Segment
from sms.models import Message, Recipient
from tests.helpers import Api, assert_envelope
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db

NUL = "a\x00b"
SURROGATE = "a\ud800b"
HOSTILE = {"nul": NUL, "surrogate": SURROGATE}
# Made up ids: the check comes before any lookup.
PATH_VALUES = {"key_id": "1"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # with {placeholders}
    where: str  # "path", "query" or "body"
    field: str
    value: Any
    kind: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.where}:{self.field}:{self.kind}"


def _schema() -> dict[str, Any]:
    response = Client().get(f"{settings.MIFUMO_API_PREFIX}schema/?format=json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = schema["components"]["schemas"][name]
    return node


def _hostile_values(schema: dict[str, Any], prop: dict[str, Any], text: str) -> list[Any]:
    """Values of the property's shape that carry ``text``."""
    prop = _resolve(schema, prop)
    kind = prop.get("type")
    if kind == "string":
        return [text]
    if kind == "array":
        item = _resolve(schema, prop.get("items", {}))
        if item.get("type") in ("string", None):
            return [[text]]
        return []
    if kind in ("object", None):
        # Objects and free-form JSON: hostile in a key and in a value.
        return [{text: "x"}, {"tags": [text]}]
    return []


def _cases() -> list[Case]:
    schema = _schema()
    cases: list[Case] = []
    for raw_path, operations in schema["paths"].items():
        path = raw_path.removeprefix(settings.MIFUMO_API_PREFIX)
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] not in ("path", "query"):
                    continue
                if parameter.get("schema", {}).get("type") != "string":
                    continue
                # Query strings and paths arrive as UTF-8 bytes: a surrogate cannot be sent.
                cases.append(Case(method, path, parameter["in"], parameter["name"], NUL, "nul"))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            properties = _resolve(schema, body["schema"]).get("properties", {})
            for name, prop in properties.items():
                for kind, text in HOSTILE.items():
                    for value in _hostile_values(schema, prop, text):
                        cases.append(Case(method, path, "body", name, value, kind))
    return cases


# Built at collection from the schema view, which needs no database.
TABLE = _cases()


@pytest.fixture
def hostile(alice: Account, api: Api) -> Api:
    Account.objects.filter(pk=alice.pk).update(
        api_per_hour=100_000, sms_per_minute=100_000, contacts_per_hour=100_000
    )
    return api


def _rows() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Message, Recipient, Contact, Segment, Endpoint, LedgerEntry)
    }


def _call(
    api: Api, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None
) -> Any:
    url = f"{settings.MIFUMO_API_PREFIX}{path}"
    if query:
        url = f"{url}?{urlencode(query)}"
    if body is None:
        return getattr(api.client, method)(url)
    # JSON with \\u escapes, as any client library sends a lone surrogate.
    return api.client.generic(
        method.upper(), url, json.dumps(body), content_type="application/json"
    )


def _fill(path: str, *, hostile: tuple[str, str] | None = None) -> str:
    filled = path
    while "{" in filled:
        start = filled.index("{")
        end = filled.index("}", start)
        name = filled[start + 1 : end]
        value = PATH_VALUES.get(name, f"{name.split('_')[0]}_missing")
        if hostile is not None and name == hostile[0]:
            value = hostile[1].replace("\x00", "%00")
        filled = filled[:start] + value + filled[end + 1 :]
    return filled


def test_the_table_covers_every_kind_of_input() -> None:
    wheres = {case.where for case in TABLE}
    assert wheres == {"path", "query", "body"}
    fields = {case.field for case in TABLE}
    # The fields the hostile inputs were first found in.
    assert {"recipients", "schedule_time", "criteria", "events", "tags", "sender_id"} <= fields
    assert {"message_id", "contact_id", "webhook_id", "delivery_id", "segment_id"} <= fields
    assert len(TABLE) > 80


@pytest.mark.parametrize("case", TABLE, ids=str)
def test_hostile_text_is_a_validation_error_naming_the_field(hostile: Api, case: Case) -> None:
    before = _rows()
    if case.where == "path":
        response = _call(hostile, case.method, _fill(case.path, hostile=(case.field, NUL)))
    elif case.where == "query":
        response = _call(hostile, case.method, _fill(case.path), query={case.field: NUL})
    else:
        response = _call(hostile, case.method, _fill(case.path), body={case.field: case.value})
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert case.field in body["details"], body
    assert _rows() == before


BAD_MOMENTS = {
    "offset beyond any zone": "2030-01-01T10:00:00-23:59",
    "year 10000 once in UTC": "9999-12-31T23:00:00-05:00",
    "year 0 once in UTC": "0001-01-01T00:00:00+05:00",
}


@pytest.mark.parametrize("path", ["sms/delivery-reports/", "sms/messages/"])
@pytest.mark.parametrize("parameter", ["start_date", "end_date"])
@pytest.mark.parametrize("value", list(BAD_MOMENTS.values()), ids=list(BAD_MOMENTS))
def test_impossible_moments_in_date_filters(
    hostile: Api, path: str, parameter: str, value: str
) -> None:
    body = assert_envelope(hostile.get(path, {parameter: value}), 400, "VALIDATION_ERROR")
    assert parameter in body["details"]


@pytest.mark.parametrize("key", ["created_after", "created_before"])
@pytest.mark.parametrize("value", list(BAD_MOMENTS.values()), ids=list(BAD_MOMENTS))
def test_impossible_moments_in_segment_criteria(hostile: Api, key: str, value: str) -> None:
    before = _rows()
    response = hostile.post("contacts/segments/create/", {"name": "odd", "criteria": {key: value}})
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert key in body["details"]["criteria"]
    assert _rows() == before


def _tomorrow_at(offset: str) -> str:
    return (timezone.now() + timedelta(days=1)).strftime(f"%Y-%m-%dT%H:%M:%S{offset}")


@pytest.mark.parametrize(
    "value",
    [*BAD_MOMENTS.values(), "tomorrow -23:59", "tomorrow +23:00"],
    ids=[*BAD_MOMENTS, "tomorrow at -23:59", "tomorrow at +23:00"],
)
def test_impossible_moments_as_schedule_time(hostile: Api, value: str) -> None:
    # schedule_time answers its own code for every time it cannot use (in the past, too far
    # ahead, without a zone, and this), naming the field like any validation error.
    if value.startswith("tomorrow "):
        value = _tomorrow_at(value.split(" ")[1])
    before = _rows()
    response = hostile.post(
        "sms/send/", {"message": "Habari", "recipients": ["+255712345678"], "schedule_time": value}
    )
    body = assert_envelope(response, 400, "INVALID_SCHEDULE_TIME")
    assert "schedule_time" in body["details"]
    assert _rows() == before


def test_a_real_offset_is_still_accepted(hostile: Api) -> None:
    response = hostile.get("sms/messages/", {"start_date": "2024-01-01T00:00:00+14:00"})
    assert_envelope(response, 200)
    response = hostile.post(
        "contacts/segments/create/",
        {"name": "kiribati", "criteria": {"created_after": "2024-01-01T00:00:00-12:00"}},
    )
    assert assert_envelope(response, 201)["data"]["criteria"] == {
        "created_after": "2024-01-01T12:00:00Z"
    }


DASHBOARD_ID_PAGES = [
    "messages/{}/",
    "webhooks/{}/",
    "webhooks/deliveries/{}/",
    "contacts/{}/",
    "segments/{}/",
]


@pytest.mark.parametrize("page", DASHBOARD_ID_PAGES)
def test_dashboard_pages_for_unstorable_ids_are_not_found(alice: Account, page: str) -> None:
    user = get_user_model().objects.create_user(username="asha", password="x")
    membership_add(user=user, account=alice, role="owner")
    client = Client()
    client.force_login(user)
    response = client.get("/api/integration/dashboard/" + page.format("%00"))
    assert response.status_code == 404
