"""One account can never see or touch another's objects: every id-taking route, every method.

The table below must name every route under the API prefix that takes an id; a route added
without a row fails ``test_every_id_route_is_in_the_table``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Model
from django.forms.models import model_to_dict
from django.urls import URLPattern, URLResolver, get_resolver

from integration.models import Account, ApiKey
from tests.helpers import Api, assert_envelope
from tests.security import Owned, seed
from webhooks.models import Delivery, Event

# route (relative to the API prefix) -> {url parameter: kind of object it names}
ROUTES: dict[str, dict[str, str]] = {
    "sms/status/<str:message_id>/": {"message_id": "message"},
    "sms/messages/<str:message_id>/": {"message_id": "message"},
    "sms/<str:message_id>/cancel/": {"message_id": "message"},
    "sms/inbound/<str:inbound_id>/": {"inbound_id": "inbound"},
    "sms/templates/<str:template_id>/": {"template_id": "template"},
    "keys/<int:key_id>/revoke/": {"key_id": "api_key"},
    "keys/<int:key_id>/rotate/": {"key_id": "api_key"},
    "contacts/<str:contact_id>/": {"contact_id": "contact"},
    "contacts/<str:contact_id>/opt-out/": {"contact_id": "contact"},
    "contacts/<str:contact_id>/opt-in/": {"contact_id": "contact"},
    "contacts/segments/<str:segment_id>/": {"segment_id": "segment"},
    "contacts/segments/<str:segment_id>/contacts/": {"segment_id": "segment"},
    "webhooks/deliveries/<str:delivery_id>/": {"delivery_id": "delivery"},
    "webhooks/deliveries/<str:delivery_id>/redeliver/": {"delivery_id": "delivery"},
    "webhooks/<str:webhook_id>/": {"webhook_id": "endpoint"},
    "webhooks/<str:webhook_id>/test/": {"webhook_id": "endpoint"},
    "webhooks/<str:webhook_id>/rotate-secret/": {"webhook_id": "endpoint"},
    "webhooks/<str:webhook_id>/deliveries/": {"webhook_id": "endpoint"},
    "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/": {
        "webhook_id": "endpoint",
        "delivery_id": "delivery",
    },
    "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/redeliver/": {
        "webhook_id": "endpoint",
        "delivery_id": "delivery",
    },
}

# Methods that never look an object up (DRF answers OPTIONS from the view's metadata).
NOT_OBJECT_METHODS = {"options", "head", "trace"}


def _walk(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        else:
            yield route, entry


def id_routes() -> dict[str, URLPattern]:
    api_prefix = settings.MIFUMO_API_PREFIX.lstrip("/")
    found: dict[str, URLPattern] = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        if not route.startswith(api_prefix):
            continue
        if pattern.pattern.regex.groupindex:
            found[route.removeprefix(api_prefix)] = pattern
    return found


def _methods(pattern: URLPattern) -> list[str]:
    view_class = pattern.callback.view_class  # type: ignore[attr-defined]
    return [
        m
        for m in view_class.http_method_names
        if m not in NOT_OBJECT_METHODS and callable(getattr(view_class, m, None))
    ]


def _path(route: str, params: dict[str, str], owned: Owned) -> str:
    path = route
    for name, kind in params.items():
        obj: Model = getattr(owned, kind)
        path = path.replace(f"<str:{name}>", str(obj.pk)).replace(f"<int:{name}>", str(obj.pk))
    assert "<" not in path, path
    return f"{settings.MIFUMO_API_PREFIX}{path}"


def _snapshot(account: Account, owned: Owned) -> dict[str, Any]:
    state: dict[str, Any] = {
        kind: model_to_dict(type(obj).objects.get(pk=obj.pk))
        for kind in (
            "message",
            "contact",
            "segment",
            "endpoint",
            "delivery",
            "api_key",
            "inbound",
            "template",
        )
        for obj in [getattr(owned, kind)]
    }
    state["deliveries"] = Delivery.objects.filter(account=account).count()
    state["events"] = Event.objects.filter(account=account).count()
    state["keys"] = ApiKey.objects.filter(account=account).count()
    state["recipients"] = sorted(owned.message.recipients.values_list("status", flat=True))
    return state


def test_every_id_route_is_in_the_table() -> None:
    assert set(id_routes()) == set(ROUTES)


def test_the_table_names_every_parameter_of_its_route() -> None:
    for route, pattern in id_routes().items():
        assert set(pattern.pattern.regex.groupindex) == set(ROUTES[route]), route


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_another_accounts_object_is_not_found(
    route: str, alice: Account, bob: Account, api_for: Any
) -> None:
    owned = seed(alice)
    bob_api: Api = api_for(bob)
    pattern = id_routes()[route]
    path = _path(route, ROUTES[route], owned)
    before = _snapshot(alice, owned)
    methods = _methods(pattern)
    assert methods, route
    for method in methods:
        call = getattr(bob_api.client, method)
        response = (
            call(path)
            if method in {"get", "delete"}
            else call(path, {"name": "mine", "active": False}, format="json")
        )
        assert response.status_code == 404, (method, path, response.status_code)
        assert_envelope(response, 404, "NOT_FOUND")
        assert str(owned.contact.name) not in response.content.decode()
    assert _snapshot(alice, owned) == before


@pytest.mark.parametrize("route", sorted(r for r in ROUTES if "get" in _methods(id_routes()[r])))
def test_the_owner_reaches_the_same_object(route: str, alice: Account, api: Api) -> None:
    # Proves the 404s above come from the account check, not from ids that exist nowhere.
    owned = seed(alice)
    assert_envelope(api.client.get(_path(route, ROUTES[route], owned)), 200)
