"""Error pages with DEBUG off: in the dashboard's layout for a signed-in user, branded for
everyone else, never Django's bare text or an empty body."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.dashboard.support import dash

pytestmark = pytest.mark.django_db


def test_an_unknown_dashboard_page_is_a_404_inside_the_layout(owner_client: Client) -> None:
    response = owner_client.get(dash("no-such-page/"))
    content = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in content and 'aria-label="Dashboard"' in content
    assert "/api/integration/dashboard/no-such-page/" in content


def test_another_accounts_object_is_the_same_404(owner_client: Client) -> None:
    response = owner_client.get(dash("messages/msg_missing/"))
    assert response.status_code == 404 and b"Page not found" in response.content


def test_a_visitor_gets_a_branded_404(client: Client) -> None:
    for path in ["/no-such-page/", dash("invite/")]:
        response = client.get(path)
        assert response.status_code == 404
        assert b"Mifumo" in response.content and b"Page not found" in response.content


@pytest.mark.parametrize("path", ["logout/", "keys/create/", "team/invite/"])
def test_a_get_on_a_post_only_address_explains_itself(owner_client: Client, path: str) -> None:
    response = owner_client.get(dash(path))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    content = response.content.decode()
    assert "That cannot be done from the address bar" in content
    assert "only takes POST requests, not GET" in content


def test_a_405_for_a_visitor_is_branded_too(client: Client) -> None:
    response = client.get(dash("logout/"))
    assert response.status_code == 405 and b"Mifumo" in response.content


def test_a_server_error_is_a_branded_page(client: Client, settings: Any) -> None:
    from dashboard.views.errors import server_error

    response = server_error(client.get("/").wsgi_request)
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content


@pytest.mark.parametrize(
    "path",
    [
        "billing/?end=9999-12-31",
        "billing/ledger.csv?end=9999-12-31",
        "activity/?end=9999-12-31",
        "messages/?end=9999-12-31",
    ],
)
def test_the_last_day_a_date_can_name_is_a_filter_like_any_other(
    owner_client: Client, path: str
) -> None:
    assert owner_client.get(dash(path)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "messages/send/", {"template": "tpl_\x00"}),
        ("get", "messages/", {"q": "a\x00b"}),
        ("get", "contacts/", {"q\x00": "x"}),
        ("post", "inbox/replies/opt_out/", {"text": "Bye\x00now", "enabled": "on"}),
    ],
)
def test_text_no_column_can_hold_is_a_400_page_not_a_server_error(
    owner_client: Client, method: str, path: str, data: dict[str, str]
) -> None:
    response = getattr(owner_client, method)(dash(path), data)
    assert response.status_code == 400
    assert "a NUL character" in response.content.decode()


def test_a_nul_in_the_username_is_a_failed_sign_in(client: Client) -> None:
    response = client.post(dash("login/"), {"username": "a\x00b", "password": "x"})
    assert response.status_code == 200
    assert "form" in response.context and response.context["form"].errors
