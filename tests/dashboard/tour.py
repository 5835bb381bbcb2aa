"""Every page of the dashboard, with an account full enough that each page shows what it
shows in real use: the pages the layout tests walk and `dev.py screenshots` photographs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from contacts.services import contact_create, contact_opt_out
from inbox.services import inbound_receive, keyword_add, number_assign
from integration.audit import Action, audit_record
from integration.members import invitation_create, membership_add
from integration.models import Account
from integration.services import (
    account_refund,
    account_set_low_balance_threshold,
    account_top_up,
    api_key_create,
    api_key_revoke,
)
from message_templates.services import template_create
from segments.services import segment_create
from sms.models import Recipient
from sms.sender_ids import sender_id_request, sender_id_review
from tests.dashboard.data import make_message, make_request_log, seed_history
from tests.dashboard.support import PASSWORD, dash
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, DeliveryAttempt, Event

NAMES = ["Asha Mushi", "Baraka Juma", "Neema Kweka", "Juma Salim", "Rehema Ally", "Zawadi Mbwana"]


@dataclass(frozen=True)
class Tour:
    """What the seeded pages are about, by name."""

    owner: Any
    member: Any
    guarded: Any  # an admin with two-factor on
    ids: dict[str, str]


def seed_account(account: Account, other: Account) -> Tour:
    users = get_user_model()
    owner = users.objects.create_user("asha", "asha@example.com", PASSWORD)
    member = users.objects.create_user("baraka", "baraka@example.com", PASSWORD)
    membership_add(user=owner, account=account, role="owner")
    membership_add(user=owner, account=other, role="owner")
    membership_add(user=member, account=account, role="member")
    guarded = users.objects.create_user("rehema", "rehema@example.com", PASSWORD)
    membership_add(user=guarded, account=account, role="admin")
    TOTPDevice.objects.create(user=guarded, name="Authenticator app", confirmed=True)
    seed_history(account)
    now = timezone.now()
    keys = [
        api_key_create(account=account, name="Billing app", permission="write", created_by=owner),
        api_key_create(account=account, name="Reports (read only)", permission="read", test=True),
        api_key_create(account=account, name="Old integration", permission="admin"),
    ]
    api_key_revoke(api_key=keys[2].api_key)
    for n, key in enumerate(keys[:2]):
        for _ in range(3 + n):
            make_request_log(account, route="sms/send/", method="POST", api_key=key.api_key)
    scheduled = make_message(
        account, statuses=["scheduled", "scheduled"], text="Mkutano kesho saa nne asubuhi."
    )
    refunded = make_message(
        account,
        statuses=["delivered", "failed", "failed"],
        phones=["+255712000101", "+255712000102", "+255712000103"],
        text="Ofa maalum: punguzo la 20% wiki hii tu! Karibu dukani 🛍️",
        charge=True,
    )
    Recipient.objects.filter(message=refunded, status="failed").update(sent_at=None)
    account_refund(
        account_id=account.pk, amount=Decimal("20.00"), reference=refunded.pk, note="rejected"
    )
    account_top_up(account=account, amount="2500.00", reference="MPESA-QX71", note="top-up")
    account_set_low_balance_threshold(account=account, threshold="1000.00")
    contacts = []
    for index in range(60):
        contact = contact_create(
            account=account,
            name=f"{NAMES[index % len(NAMES)]} {index + 1}",
            phone_number=f"+2557540{index:05d}",
            email=f"contact{index + 1}@example.co.tz" if index % 3 else "",
            tags=["vip", "dar"] if index % 4 == 0 else ["customer"],
            custom_fields={"city": "Dar es Salaam" if index % 4 == 0 else "Arusha"}
            | ({"order_id": str(1040 + index)} if index % 2 else {}),
        )
        contacts.append(contact)
    contact_opt_out(contact=contacts[1])
    segment = segment_create(
        account=account,
        name="VIP in Dar",
        description="Our best customers in Dar es Salaam",
        criteria={"tags_all": ["vip", "dar"], "opted_out": False},
    )
    for n in range(3):
        segment_create(account=account, name=f"Campaign {n + 1}", criteria={"tags": ["customer"]})
    template = template_create(
        account=account,
        name="Order ready",
        text="Habari {{name}}, oda yako {{order_id}} iko tayari {{city|Dar es Salaam}}.",
    )
    template_create(account=account, name="Karibu", text="Karibu {{name}}! Asante kwa kununua.")
    endpoint = endpoint_create(
        account=account,
        url="https://crm.example.co.tz/hooks/mifumo/very/long/path/to/see/wrapping",
        description="CRM status updates",
    )
    event = Event.objects.create(
        account=account,
        type="message.delivered",
        message=refunded,
        body='{"event": "message.delivered", "recipients": [{"phone": "+255712000101"}]}',
    )
    delivery = Delivery.objects.create(
        event=event,
        account=account,
        endpoint=endpoint,
        url=endpoint.url,
        status="failed",
        attempts=1,
        last_status_code=500,
        last_latency_ms=231.0,
        last_error="HTTP 500 Internal Server Error",
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=now,
        url=endpoint.url,
        status_code=500,
        latency_ms=231.0,
        error="HTTP 500 Internal Server Error",
        response_head="upstream exploded",
    )
    sender_id_request(account=account, value="DUKA", purpose="Shop receipts")
    sender_id_request(account=account, value="FREEMONEY", purpose="Promotions")
    sender_id_request(account=account, value="KLINIKI", purpose="Appointment reminders")
    sender_id_review(account=account, value="DUKA", approve=True)
    sender_id_review(
        account=account, value="FREEMONEY", approve=False, note="Misleading: not a brand name"
    )
    number_assign(account=account, number="+255700000100")
    number_assign(account=account, number="15555", keyword="DUKA")
    keyword_add(account=account, word="BASI", action="opt_out")
    for sender, destination, text in [
        (
            "+255712000101",
            "+255700000100",
            "Habari, nimepokea ujumbe. Bei ya mbolea ni kiasi gani?",
        ),
        ("+255712000101", "+255700000100", "Asante sana!"),
        ("+255712000102", "15555", "DUKA stop"),
        ("+255712000103", "15555", "duka msaada"),
    ]:
        inbound_receive(carrier="beem", sender=sender, destination=destination, text=text)
    _, token = invitation_create(
        account=account, email="neema@example.com", role="admin", invited_by=owner
    )
    audit_record(
        account=account,
        actor=None,
        action=Action.ACCOUNT_TOPPED_UP,
        target=account.name,
        details={"amount": "2500.00"},
        operator=True,
    )
    return Tour(
        owner=owner,
        member=member,
        guarded=guarded,
        ids={
            "message": refunded.pk,
            "scheduled": scheduled.pk,
            "contact": contacts[0].pk,
            "segment": segment.pk,
            "template": template.pk,
            "webhook": endpoint.pk,
            "delivery": delivery.pk,
            "key": str(keys[0].api_key.pk),
            "invitation": token,
            "conversation": "+255712000101",
        },
    )


def signed_in_pages(tour: Tour) -> list[tuple[str, str]]:
    """(name, path) of every page a signed-in owner opens with a GET."""
    ids = tour.ids
    return [
        ("overview", dash()),
        ("messages", dash("messages/")),
        ("messages-filtered", dash(f"messages/?key={ids['key']}")),
        ("message", dash(f"messages/{ids['message']}/")),
        ("message-scheduled", dash(f"messages/{ids['scheduled']}/")),
        ("send", dash("messages/send/")),
        ("contacts", dash("contacts/")),
        ("contact", dash(f"contacts/{ids['contact']}/")),
        ("contact-new", dash("contacts/new/")),
        ("contact-edit", dash(f"contacts/{ids['contact']}/edit/")),
        ("contacts-import", dash("contacts/import/")),
        ("segments", dash("segments/")),
        ("segment", dash(f"segments/{ids['segment']}/")),
        ("segment-new", dash("segments/new/")),
        ("segment-edit", dash(f"segments/{ids['segment']}/edit/")),
        ("templates", dash("templates/")),
        ("template-new", dash("templates/new/")),
        ("template-edit", dash(f"templates/{ids['template']}/edit/")),
        ("send-template", dash(f"messages/send/?template={ids['template']}")),
        ("inbox", dash("inbox/")),
        ("conversation", dash(f"inbox/{ids['conversation']}/")),
        ("opt-outs", dash("inbox/opt-outs/")),
        ("keywords", dash("inbox/keywords/")),
        ("numbers", dash("inbox/numbers/")),
        ("sender-ids", dash("sender-ids/")),
        ("keys", dash("keys/")),
        ("usage", dash("usage/")),
        ("usage-key", dash(f"usage/?period=7&key={ids['key']}")),
        ("webhooks", dash("webhooks/")),
        ("webhook", dash(f"webhooks/{ids['webhook']}/")),
        ("delivery", dash(f"webhooks/deliveries/{ids['delivery']}/")),
        ("billing", dash("billing/")),
        ("team", dash("team/")),
        ("activity", dash("activity/")),
        ("password-change", dash("password/")),
        ("two-factor", dash("two-factor/")),
        ("not-found", dash("no-such-page/")),
        ("method-not-allowed", dash("logout/")),
    ]


def public_pages(tour: Tour) -> list[tuple[str, str]]:
    """(name, path) of the pages seen before signing in."""
    return [
        ("login", dash("login/")),
        ("password-reset", dash("password/reset/")),
        ("password-reset-sent", dash("password/reset/sent/")),
        ("password-reset-bad-link", dash("password/reset/MQ/bad-token/")),
        ("invitation", dash(f"invite/{tour.ids['invitation']}/")),
        ("invitation-invalid", dash("invite/forged-token/")),
        ("public-not-found", "/no-such-page/"),
    ]
