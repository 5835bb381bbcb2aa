"""Objects of every kind an account owns, made without going through the API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_create
from inbox.models import InboundMessage
from integration.models import Account, ApiKey, Permission
from integration.services import api_key_create
from message_templates.models import MessageTemplate
from message_templates.services import template_create
from segments.models import Segment
from segments.services import segment_create
from sms.models import Message, Recipient
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Endpoint, Event, EventType


@dataclass(frozen=True)
class Owned:
    message: Message
    contact: Contact
    segment: Segment
    endpoint: Endpoint
    delivery: Delivery
    api_key: ApiKey
    inbound: InboundMessage
    template: MessageTemplate


def seed(account: Account, *, text: str = "Hello from Mifumo SMS!", label: str = "x") -> Owned:
    """One of each: ``text`` goes into every free-text field, so that pages listing them can
    be checked for escaping."""
    now = timezone.now()
    message = Message.objects.create(
        account=account,
        source=Message.Source.API,
        text=text,
        sender_id="MIFUMO",
        encoding="ucs2",
        segments=1,
        recipient_count=1,
        cost=Decimal("10.00"),
        currency="TZS",
        created_at=now,
    )
    Recipient.objects.create(
        message=message,
        account=account,
        created_at=now,
        phone="+255712345678",
        status=Recipient.Status.SENT,
        cost=Decimal("10.00"),
    )
    contact = contact_create(account=account, name=text, phone_number="+255754000001")
    segment = segment_create(
        account=account, name=f"{label} {text}"[:100], description=text, criteria={}
    )
    endpoint = endpoint_create(
        account=account, url="https://hooks.example.com/mifumo", description=text
    )
    event = Event.objects.create(
        account=account,
        type=EventType.DELIVERED,
        message=message,
        body=json.dumps({"event": EventType.DELIVERED.value, "message_id": message.pk}),
    )
    delivery = Delivery.objects.create(
        event=event,
        account=account,
        endpoint=endpoint,
        url=endpoint.url,
        status=Delivery.Status.FAILED,
        attempts=3,
    )
    issued = api_key_create(account=account, name=text[:100], permission=Permission.READ)
    template = template_create(account=account, name=f"{label} {text}"[:100], text=text)
    return Owned(
        message=message,
        contact=contact,
        segment=segment,
        endpoint=endpoint,
        delivery=delivery,
        api_key=issued.api_key,
        inbound=InboundMessage.objects.create(
            account=account, sender="+255754000001", destination="15555", text=text, carrier="x"
        ),
        template=template,
    )
