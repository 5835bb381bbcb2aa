"""Writes for two-way messaging: assigning numbers, and the pipeline every inbound message
takes (store once, route, match keywords, opt out or in, queue webhooks and replies)."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from contacts.models import Contact, OptOutSource
from contacts.services import contact_set_opted_out
from inbox import keywords
from inbox.models import Action, AutoReply, InboundMessage, Keyword, Number
from integration.audit import AuditContext
from integration.models import Account, ApiKey
from mifumo.api.fields import iso
from mifumo.api.text import storable
from mifumo.errors import DomainError
from sms.carriers.inbound import InboundSms
from sms.encoding import analyze
from sms.models import Message, Recipient
from sms.phones import InvalidPhone, normalize_phone
from sms.services import message_send
from sms.signals import StatusChange
from webhooks.models import EventType
from webhooks.outbox import AccountEvent, event_record_accounts

logger = logging.getLogger(__name__)

SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
LONG_NUMBER = re.compile(r"^\+[1-9][0-9]{7,14}$")
# How far back a reply is matched to the message it answers.
REPLY_WINDOW = timedelta(days=7)


class NumberError(ValueError):
    """A number or keyword that cannot be assigned, with the reason."""


def normalise_number(raw: str) -> str:
    """A short code stays its digits; a long number becomes E.164 ("255712345678",
    "+255 712 345 678" and "0712345678" all give "+255712345678")."""
    value = re.sub(r"[\s()-]", "", raw or "")
    if SHORT_CODE.match(value):
        return value
    if value.isdigit() and not value.startswith("0"):
        value = "+" + value
    elif not value.startswith("+"):
        try:
            value = normalize_phone(value)
        except InvalidPhone as exc:
            raise NumberError(
                f"{raw!r} is neither a short code nor a phone number: {exc}"
            ) from None
    if not LONG_NUMBER.match(value):
        raise NumberError(f"{raw!r} is neither a short code (3-8 digits) nor an E.164 number")
    return value


def normalise_sender(raw: str) -> str:
    """The sending phone as E.164 when it is one; anything else (an alphanumeric sender)
    as it came."""
    value = (raw or "").strip()
    try:
        return normalize_phone(value if value.startswith(("+", "0")) else "+" + value)
    except InvalidPhone:
        return value[:32]


def number_assign(*, account: Account, number: str, keyword: str = "") -> tuple[Number, bool]:
    """Let ``account`` receive on ``number`` (for a shared code, the messages whose first
    word is ``keyword``). Returns the assignment and whether it is new; NumberError when
    another account holds the number, or the number with that keyword."""
    value = normalise_number(number)
    word = keywords.normalise_keyword(keyword)
    if keyword and not keywords.KEYWORD_FORMAT.match(word):
        raise NumberError(f"{keyword!r}: a keyword is one word of up to 20 letters or digits")
    with transaction.atomic():
        held = list(Number.objects.select_for_update().filter(number=value))
        for row in held:
            if row.keyword == word and row.account_id == account.pk:
                return row, False
        others = [row for row in held if row.account_id != account.pk]
        if any(row.keyword == word for row in others):
            raise NumberError(f"{value} {word} is held by another account".replace("  ", " "))
        if others and not word:
            raise NumberError(f"{value} is shared by other accounts: assign it with --keyword")
        if any(not row.keyword for row in others):
            raise NumberError(f"{value} belongs to another account alone")
        try:
            with transaction.atomic():
                return Number.objects.create(account=account, number=value, keyword=word), True
        except IntegrityError:
            raise NumberError(f"{value} {word} is held by another account") from None


@dataclass(frozen=True)
class Route:
    number: Number | None
    keyword: str
    text: str  # what the keywords are matched on: the text after the routing keyword


def route(*, destination: str, text: str, account: Account | None = None) -> Route:
    """Destination first; for a number shared by keyword, the first word of the text."""
    rows = Number.objects.filter(number=destination).select_related("account")
    if account is not None:
        rows = rows.filter(account=account)
    return _route_among(list(rows), text)


def _route_among(candidates: Sequence[Number], text: str) -> Route:
    dedicated = [row for row in candidates if not row.keyword]
    if dedicated:
        return Route(dedicated[0], "", text)
    word, rest = keywords.first_word(text)
    for row in candidates:
        if row.keyword == word:
            return Route(row, word, rest)
    return Route(None, "", text)


def inbound_data(message: InboundMessage) -> dict[str, Any]:
    """The inbound message as the API and the ``message.received`` event show it."""
    return {
        "inbound_id": message.id,
        "from": message.sender,
        "to": message.destination,
        "text": message.text,
        "keyword": message.keyword or None,
        "action": message.action or None,
        "received_at": iso(message.received_at),
        "carrier": message.carrier,
        "contact_id": message.contact_id,
        "in_reply_to": message.in_reply_to_id,
    }


def auto_reply_text(*, account: Account, action: str) -> str | None:
    """The account's reply to ``action``: its own text, the default, or None when off."""
    own = AutoReply.objects.filter(account=account, action=action).first()
    if own is None:
        return keywords.DEFAULT_REPLIES.get(action)
    if not own.enabled:
        return None
    return own.text or keywords.DEFAULT_REPLIES.get(action)


def _send_auto_reply(
    message: InboundMessage, number: Number, account: Account, api_key: ApiKey | None
) -> str | None:
    """Send the reply to the keyword from the receiving number, priced and charged like any
    message. A reply that cannot go (no balance, the phone opted out) is skipped: the
    inbound message and what it asked for stand."""
    text = auto_reply_text(account=account, action=message.action)
    if not text:
        return None
    try:
        with transaction.atomic():
            result = message_send(
                account=account,
                api_key=api_key,
                text=text,
                recipients=[message.sender],
                sender_id=number.number,
                source=Message.Source.AUTO_REPLY,
            )
    except DomainError as exc:
        logger.info("auto-reply to %s skipped: %s (%s)", message.id, exc.code, exc)
        return None
    return result.message.id


def _apply_action(
    message: InboundMessage, account: Account, contact: Contact | None
) -> Contact | None:
    """Opt the phone out (creating its contact) or back in, as the keyword asked."""
    if message.action not in (Action.OPT_OUT, Action.OPT_IN):
        return contact
    if not LONG_NUMBER.match(message.sender):
        return contact  # an alphanumeric sender: no phone to opt out
    opting_out = message.action == Action.OPT_OUT
    # Read again, locked: the batch's copy may be stale (a message earlier in the batch, or
    # an opt-in and an opt-out from the phone handled at once by two workers).
    contact = (
        Contact.objects.select_for_update()
        .filter(account=account, phone_number=message.sender)
        .first()
    )
    if contact is None and not opting_out:
        return None  # a phone with no contact was never opted out
    if contact is None:
        contact, _ = Contact.objects.get_or_create(
            account=account, phone_number=message.sender, defaults={"name": message.sender}
        )
    return contact_set_opted_out(
        contact=contact,
        opted_out=opting_out,
        source=OptOutSource.KEYWORD,
        inbound_id=message.id,
        is_test=message.is_test,
        detail=message.text,
    )


def inbound_receive(
    *,
    carrier: str,
    sender: str,
    destination: str,
    text: str,
    carrier_message_id: str = "",
    received_at: datetime | None = None,
    raw: Mapping[str, Any] | None = None,
    incomplete: bool = False,
    account: Account | None = None,
    api_key: ApiKey | None = None,
) -> tuple[InboundMessage, bool]:
    """Store one inbound message and do what it asks (see ``inbound_receive_many``);
    returns it and whether it is new."""
    item = InboundSms(
        carrier=carrier,
        sender=sender,
        destination=destination,
        text=text,
        carrier_message_id=carrier_message_id,
        received_at=received_at,
        raw={**(raw or {}), **({"incomplete": True} if incomplete else {})},
    )
    [result] = inbound_receive_many(items=[item], account=account, api_key=api_key)
    return result


def inbound_receive_many(
    *,
    items: Sequence[InboundSms],
    account: Account | None = None,
    api_key: ApiKey | None = None,
) -> list[tuple[InboundMessage, bool]]:
    """Store inbound messages and do what they ask: one (message, is new) per item.

    Each is routed (destination, then the first word for a shared code), matched against
    the keywords, linked to the account's contact and to the message it answers, stored,
    and announced by a ``message.received`` event; keywords opt the phone out or in and get
    their automatic reply. A carrier that redelivers (same carrier and carrier id) gets the
    stored message back and nothing is done twice. ``account`` restricts routing to that
    account (the simulator); ``api_key`` is a test key there, which makes the messages and
    their replies test traffic. One transaction with a fixed number of queries for the
    plain messages of the batch; so a carrier is answered only once it is stored.
    """
    now = timezone.now()
    is_test = bool(api_key and api_key.is_test)
    with transaction.atomic():
        prepared = [_prepare(item) for item in items]
        stored = _already_stored(prepared)
        numbers = Number.objects.filter(number__in={p.destination for p in prepared})
        if account is not None:
            numbers = numbers.filter(account=account)
        by_number: dict[str, list[Number]] = defaultdict(list)
        for number in numbers.select_related("account"):
            by_number[number.number].append(number)
        fresh: dict[tuple[str, str], InboundMessage] = {}
        messages: list[InboundMessage | None] = []
        texts: dict[int, str] = {}  # what keywords match: the text after the routing word
        for item in prepared:
            key = (item.carrier, item.carrier_message_id)
            if item.carrier_message_id and (key in stored or key in fresh):
                messages.append(None)
                continue
            routed = _route_among(by_number.get(item.destination, ()), item.text)
            message = InboundMessage(
                account=routed.number.account if routed.number else None,
                number=routed.number,
                sender=item.sender,
                destination=item.destination,
                text=item.text,
                keyword=routed.keyword,
                carrier=item.carrier,
                carrier_message_id=item.carrier_message_id,
                is_test=is_test,
                incomplete=bool(item.raw.get("incomplete")),
                raw=dict(item.raw),
                # A provider's clock ahead of ours must not date it in the future.
                received_at=min(item.received_at or now, now),
            )
            texts[id(message)] = routed.text
            messages.append(message)
            if item.carrier_message_id:
                fresh[key] = message
        new = [m for m in messages if m is not None]
        _fill_in(new, texts, now)
        try:
            with transaction.atomic():
                InboundMessage.objects.bulk_create(new, batch_size=INSERT_BATCH)
        except IntegrityError:
            # A carrier delivered one of them twice at once: the other copy stored it.
            return [_receive_alone(item, account, api_key) for item in items]
        for message in new:
            if message.action and message.account is not None and message.number is not None:
                _act(message, message.number, message.account, api_key)
        event_record_accounts(
            events=[
                AccountEvent(m.account_id, EventType.RECEIVED, inbound_data(m), m.is_test)
                for m in new
                if m.account_id is not None
            ]
        )
        unmatched = sum(1 for m in new if m.account_id is None)
        if unmatched:
            logger.info("%d inbound messages match no account; kept", unmatched)
    results: list[tuple[InboundMessage, bool]] = []
    for item, found in zip(prepared, messages, strict=True):
        if found is None:
            key = (item.carrier, item.carrier_message_id)
            results.append((stored.get(key) or fresh[key], False))
        else:
            results.append((found, True))
    return results


INSERT_BATCH = 1000


def _prepare(item: InboundSms) -> InboundSms:
    """The item as stored: numbers normalised, the id cut to size, no NUL and no lone
    surrogate anywhere, the provider's raw fields included (PostgreSQL's text and jsonb
    cannot hold them, no phone means one, and the carrier would send the message again
    forever)."""
    try:
        destination = normalise_number(storable(item.destination))
    except NumberError:
        destination = storable(item.destination or "").strip()[:32]
    return InboundSms(
        carrier=item.carrier,
        sender=normalise_sender(storable(item.sender)),
        destination=destination,
        text=storable(item.text),
        carrier_message_id=storable(item.carrier_message_id or "")[:120],
        received_at=item.received_at,
        raw=storable(item.raw),
    )


def _already_stored(items: Sequence[InboundSms]) -> dict[tuple[str, str], InboundMessage]:
    ids = {(i.carrier, i.carrier_message_id) for i in items if i.carrier_message_id}
    if not ids:
        return {}
    rows = InboundMessage.objects.filter(
        carrier__in={c for c, _ in ids}, carrier_message_id__in={m for _, m in ids}
    )
    return {(m.carrier, m.carrier_message_id): m for m in rows}


def _fill_in(messages: Sequence[InboundMessage], texts: dict[int, str], now: datetime) -> None:
    """Keyword actions, contacts and the messages they answer, a query each for the batch."""
    routed = [m for m in messages if m.account_id is not None]
    if not routed:
        return
    accounts = {m.account_id for m in routed}
    phones = {m.sender for m in routed}
    extra: dict[int, dict[str, str]] = defaultdict(dict)
    for account_id, word, action in Keyword.objects.filter(account_id__in=accounts).values_list(
        "account_id", "word", "action"
    ):
        extra[account_id][word] = action
    contacts = {
        (c.account_id, c.phone_number): c
        for c in Contact.objects.filter(account_id__in=accounts, phone_number__in=phones)
    }
    # What the phone may be answering: a message on its way to it or sent (not one still
    # scheduled, or canceled), of its own kind of traffic (test or live), the latest first.
    answered: dict[tuple[int, str, str, bool], str] = {}
    latest = (
        Recipient.objects.filter(
            account_id__in=accounts,
            phone__in=phones,
            created_at__gte=now - REPLY_WINDOW,
            message__sender_id__in={m.destination for m in routed},
        )
        .exclude(status__in=(Recipient.Status.SCHEDULED, Recipient.Status.CANCELED))
        .order_by("-created_at", "-id")
        .values_list("account_id", "phone", "message__sender_id", "message__is_test", "message_id")
    )
    for account_id, phone, number, is_test, message_id in latest:
        answered.setdefault((account_id, phone, number, is_test), message_id)
    for m in routed:
        assert m.account_id is not None
        m.action = keywords.match_action(texts[id(m)], extra.get(m.account_id)) or ""
        m.contact = contacts.get((m.account_id, m.sender))
        m.in_reply_to_id = answered.get((m.account_id, m.sender, m.destination, m.is_test))


def _act(message: InboundMessage, number: Number, owner: Account, api_key: ApiKey | None) -> None:
    """Opt out or in, and send the keyword's automatic reply. The confirmation of an opt-out
    goes before the opt-out itself: afterwards every send to the phone is refused."""
    if message.action == Action.OPT_OUT:
        _send_auto_reply(message, number, owner, api_key)
    contact = _apply_action(message, owner, message.contact)
    if contact is not None and message.contact_id != contact.pk:
        message.contact = contact
        message.save(update_fields=["contact"])
    if message.action in (Action.OPT_IN, Action.HELP):
        _send_auto_reply(message, number, owner, api_key)


def _receive_alone(
    item: InboundSms, account: Account | None, api_key: ApiKey | None
) -> tuple[InboundMessage, bool]:
    """One item in a savepoint of its own: a duplicate that raced us is returned stored."""
    try:
        with transaction.atomic():
            [result] = inbound_receive_many(items=[item], account=account, api_key=api_key)
            return result
    except IntegrityError:
        stored = InboundMessage.objects.get(
            carrier=item.carrier, carrier_message_id=item.carrier_message_id[:120]
        )
        return stored, False


def inbound_mark_read(*, account: Account, phone: str) -> int:
    """Mark the account's unread messages from ``phone`` read; returns how many."""
    return InboundMessage.objects.filter(account=account, sender=phone, read_at=None).update(
        read_at=timezone.now()
    )


def _carrier_opt_out_codes(carrier: str) -> frozenset[str]:
    """The error codes with which ``carrier`` says a phone opted out: its backend's
    ``opt_out_errors`` and the ``OPT_OUT_ERRORS`` option (SMPP error codes differ per SMSC)."""
    config = settings.MIFUMO_CARRIERS.get(carrier)
    if not config or "BACKEND" not in config:
        return frozenset()
    backend = import_string(config["BACKEND"])
    codes = set(getattr(backend, "opt_out_errors", ()))
    codes.update(str(code) for code in config.get("OPT_OUT_ERRORS", ()))
    return frozenset(codes)


def opt_out_reported_by_carriers(*, changes: Sequence[StatusChange]) -> int:
    """Opt out the phones whose messages failed because the carrier says they opted out
    (Twilio 21610, Africa's Talking UserInBlacklist, configured SMPP codes); returns how
    many. Runs in the transaction that recorded the failures."""
    failed = [
        rid for change in changes if change.status == "failed" for rid in change.recipient_ids
    ]
    if not failed:
        return 0
    rows = Recipient.objects.filter(id__in=failed).exclude(error_code="")
    found = list(rows.values_list("account_id", "phone", "carrier", "error_code"))
    codes: dict[str, frozenset[str]] = {}
    done = 0
    for account_id, phone, carrier, code in found:
        if carrier not in codes:
            codes[carrier] = _carrier_opt_out_codes(carrier)
        if code not in codes[carrier]:
            continue
        contact, _ = Contact.objects.get_or_create(
            account_id=account_id, phone_number=phone, defaults={"name": phone}
        )
        if not contact.opted_out:
            contact_set_opted_out(
                contact=contact,
                opted_out=True,
                source=OptOutSource.CARRIER,
                detail=f"{carrier}: {code}",
            )
            done += 1
    return done


@transaction.atomic
def keyword_add(
    *, account: Account, word: str, action: str, audit: AuditContext | None = None
) -> Keyword:
    """Add a word to the account's keywords; NumberError-like ValueError when it is not one
    word, is a standard keyword already, or the account has it."""
    value = keywords.normalise_keyword(word)
    if not keywords.KEYWORD_FORMAT.match(value):
        raise ValueError("A keyword is one word of up to 20 letters or digits.")
    if value in keywords.STANDARD:
        raise ValueError(f"{value} is a standard keyword already.")
    if action not in Action.values:
        raise ValueError("Choose what the keyword does.")
    keyword, created = Keyword.objects.get_or_create(
        account=account, word=value, defaults={"action": action}
    )
    if not created:
        raise ValueError(f"{value} is one of this account's keywords already.")
    if audit is not None:
        audit.record(
            account=account, action="keyword.added", target=keyword.word, details={"does": action}
        )
    return keyword


@transaction.atomic
def keyword_remove(
    *, account: Account, keyword_id: int, audit: AuditContext | None = None
) -> str | None:
    """Remove one of the account's keywords; its word, or None when there is no such one."""
    keyword = Keyword.objects.filter(account=account, pk=keyword_id).first()
    if keyword is None:
        return None
    keyword.delete()
    if audit is not None:
        audit.record(account=account, action="keyword.removed", target=keyword.word)
    return keyword.word


@transaction.atomic
def auto_reply_set(
    *, account: Account, action: str, text: str, enabled: bool, audit: AuditContext | None = None
) -> AutoReply:
    """The account's reply to ``action`` (blank text: the default). ValueError when the text
    is longer than the account may send."""
    text = text.strip()
    info = analyze(text)
    if info.length > account.message_length_limit:
        raise ValueError(
            f"The reply is {info.length} characters; this account sends at most "
            f"{account.message_length_limit}."
        )
    reply, _ = AutoReply.objects.update_or_create(
        account=account,
        action=action,
        defaults={"text": text, "enabled": enabled, "updated_at": timezone.now()},
    )
    if audit is not None:
        audit.record(
            account=account,
            action="auto_reply.changed",
            target=action,
            details={"enabled": enabled},
        )
    return reply
