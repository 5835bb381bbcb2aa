"""Every form carries a CSRF token, and every POST without one is refused."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.urls import urlpatterns
from integration.models import Account
from integration.services import api_key_create
from sms.sender_ids import sender_id_request
from tests.dashboard.data import make_message
from tests.dashboard.support import PASSWORD, dash
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Event

pytestmark = pytest.mark.django_db

# Every route that accepts POST; the others must answer POST with 405.
POST_ROUTES = {
    "login",
    "login_code",
    "two_factor",
    "logout",
    "password_change",
    "account_switch",
    "key_create",
    "key_revoke",
    "key_rotate",
    "message_send",
    "message_cancel",
    "webhook_create",
    "webhook_edit",
    "webhook_toggle",
    "webhook_delete",
    "webhook_secret",
    "webhook_rotate_secret",
    "webhook_test",
    "delivery_redeliver",
    "signing_secret_reveal",
    "signing_secret_rotate",
    "sender_id_request",
    "contacts_import",
    "contact_new",
    "contact_edit",
    "contact_opt_out",
    "contact_opt_in",
    "contact_delete",
    "segment_new",
    "segment_edit",
    "segment_delete",
    "template_new",
    "template_edit",
    "template_delete",
    "billing_threshold",
    "invite",
    "invitation",
    "invitation_revoke",
    "member_role",
    "member_remove",
    "password_reset",
    "password_reset_confirm",
    "conversation",
    "keywords",
    "keyword_delete",
    "auto_reply",
}


@pytest.fixture
def objects(alice: Account, settings: Any) -> dict[str, Any]:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    endpoint = endpoint_create(account=alice, url="http://127.0.0.1:9/hook")
    message = make_message(alice, statuses=["scheduled"])
    event = Event.objects.create(account=alice, type="message.sent", message=message, body="{}")
    delivery = Delivery.objects.create(
        event=event, account=alice, endpoint=endpoint, url=endpoint.url, status="failed"
    )
    sender_id_request(account=alice, value="DUKA")
    return {
        "key_id": api_key_create(account=alice, name="k").api_key.pk,
        "message_id": message.pk,
        "webhook_id": endpoint.pk,
        "delivery_id": delivery.pk,
        "contact_id": "con_missing",
        "segment_id": "seg_missing",
        "template_id": "tpl_missing",
        "invitation_id": 999999,
        "membership_id": 999999,
        "token": "not-a-token",
        "uidb64": "MQ",
        "phone": "+255712345678",
        "keyword_id": 999999,
        "action": "help",
    }


def url_for(name: str, objects: dict[str, Any]) -> str:
    pattern = next(p for p in urlpatterns if p.name == name)
    kwargs = {k: objects[k] for k in pattern.pattern.converters}
    return reverse(f"dashboard:{name}", kwargs=kwargs)


@pytest.mark.parametrize("name", sorted(POST_ROUTES))
def test_a_post_without_a_token_is_refused(
    csrf_client: Client, objects: dict[str, Any], name: str
) -> None:
    response = csrf_client.post(url_for(name, objects), {})
    assert response.status_code == 403
    assert b"CSRF" in response.content


@pytest.mark.parametrize("name", sorted(POST_ROUTES))
def test_the_same_post_with_a_token_gets_past_the_check(
    csrf_client: Client, objects: dict[str, Any], name: str
) -> None:
    csrf_client.get(dash())
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post(url_for(name, objects), {"csrfmiddlewaretoken": token})
    assert b"CSRF verification failed" not in response.content


@pytest.mark.parametrize(
    "name", sorted(p.name for p in urlpatterns if p.name and p.name not in POST_ROUTES)
)
def test_read_only_pages_do_not_accept_posts(
    owner_client: Client, objects: dict[str, Any], name: str
) -> None:
    assert owner_client.post(url_for(name, objects), {}).status_code == 405


def test_the_sign_in_form_needs_its_token(owner: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(dash("login/"), {"username": "asha", "password": PASSWORD})
    assert response.status_code == 403
    page = client.get(dash("login/"))
    assert b"csrfmiddlewaretoken" in page.content


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self._current = {"method": (values.get("method") or "get").lower(), "token": False}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None:
            if values.get("name") == "csrfmiddlewaretoken" and values.get("value"):
                self._current["token"] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


PAGES = [
    "overview",
    "keys",
    "usage",
    "messages",
    "message",
    "message_send",
    "webhooks",
    "webhook",
    "delivery",
    "sender_ids",
    "activity",
    "contacts",
    "contacts_import",
    "segments",
    "password_change",
]


@pytest.mark.parametrize("name", PAGES)
def test_every_post_form_on_every_page_carries_a_token(
    owner_client: Client, objects: dict[str, Any], name: str
) -> None:
    response = owner_client.get(url_for(name, objects))
    assert response.status_code == 200
    parser = _Forms()
    parser.feed(response.content.decode())
    posts = [f for f in parser.forms if f["method"] == "post"]
    assert posts, "every page has at least the sign-out form"
    assert all(f["token"] for f in posts)
