"""The Django admin pages for endpoints, events and deliveries render; attempts are read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sms.models import Recipient
from tests.webhooks.conftest import change_status, make_message
from webhooks.delivery import delivery_attempt
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db


def test_admin_pages_render_without_secrets(admin_client, alice, receiver):
    endpoint = endpoint_create(account=alice, url=receiver.url)
    change_status(make_message(alice), Recipient.Status.SENT)
    delivery = Delivery.objects.get()
    delivery_attempt(delivery_id=delivery.pk)
    event = Event.objects.get()

    for model, obj in ((Endpoint, endpoint), (Event, event), (Delivery, delivery)):
        info = (model._meta.app_label, model._meta.model_name)
        listing = admin_client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert listing.status_code == 200
        page = admin_client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        assert page.status_code == 200
        assert endpoint.secret not in page.content.decode()
        assert endpoint.secret_encrypted not in page.content.decode()

    page = admin_client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert "attempt_log-0-status_code" not in page.content.decode()  # shown, not editable
    assert b"200" in page.content
