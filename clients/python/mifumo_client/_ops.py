"""Every API operation as a function that builds its ``Call``.

These functions are the one place where parameters, paths and answers are written down;
the sync and async resources (``resources.py``) expose each of them as a method with the
same signature and docstring. A new resource (templates, inbound messages) is a few
functions here and a class there.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeVar
from urllib.parse import quote

from mifumo_client._convert import build, format_moment, plain_json
from mifumo_client._core import API_PATH, Answer, Call, Link, new_idempotency_key
from mifumo_client.models import (
    ApiKey,
    Balance,
    CancelResult,
    Contact,
    Deleted,
    DeliveryReport,
    ImportResult,
    InboundMessage,
    Message,
    MessageStatus,
    NewApiKey,
    Page,
    RecipientStatus,
    Segment,
    SenderId,
    SendResult,
    SigningSecret,
    Template,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookEndpoint,
)

T = TypeVar("T")
Moment = datetime | date | str
CsvSource = str | os.PathLike[str] | bytes | IO[bytes]
_GZIP_MAGIC = b"\x1f\x8b"


class _Unset:
    """ "Leave it as it is", in updates, where None can be a value (no email)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

# Page sizes: the API's maximum, so that a walk takes as few requests as it can.
MAX_PER_PAGE = 100
MAX_RECIPIENTS_PER_PAGE = 1000


# --- building blocks -------------------------------------------------------------------------


def _segment(value: str | int, name: str) -> str:
    """An id as one path segment."""
    text = str(value)
    if not text.strip():
        raise ValueError(f"{name} must not be empty")
    return quote(text, safe="")


def _query(**values: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime | date):
            params[name] = format_moment(value)
        elif isinstance(value, bool):
            params[name] = "true" if value else "false"
        else:
            params[name] = str(value)
    return params


def _changes(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not UNSET}


def _one(cls: type[T]) -> Callable[[Answer], T]:
    return lambda answer: build(cls, answer.data)


def _get(path: str, parse: Callable[[Answer], T], **params: Any) -> Call[T]:
    return Call("GET", path, parse, params=_query(**params) or None)


def _post(
    path: str,
    parse: Callable[[Answer], T],
    body: Any = None,
    *,
    idempotency_key: str | None = None,
) -> Call[T]:
    """A POST the server deduplicates by its Idempotency-Key, so retries are safe."""
    return Call(
        "POST", path, parse, json=body, idempotency_key=idempotency_key or new_idempotency_key()
    )


def _numbered_pages(
    path: str, key: str, cls: type[T], per_page: int, params: Mapping[str, str]
) -> Call[Link[T]]:
    """A list paged with page/per_page -> {page, per_page, total, pages}."""

    def call(page: int) -> Call[Link[T]]:
        def parse(answer: Answer) -> Link[T]:
            items = [build(cls, row) for row in answer.data[key]]
            pagination = answer.data["pagination"]
            more = bool(items) and int(pagination["page"]) < int(pagination["pages"])
            return Link(
                Page(items=items, total=int(pagination["total"])),
                call(page + 1) if more else None,
            )

        query = {**params, "page": str(page), "per_page": str(per_page)}
        return Call("GET", path, parse, params=query)

    return call(1)


def _offset_pages(
    path: str, key: str, cls: type[T], limit: int, params: Mapping[str, str]
) -> Call[Link[T]]:
    """A list paged with limit/offset -> {limit, offset, total}."""

    def call(offset: int) -> Call[Link[T]]:
        def parse(answer: Answer) -> Link[T]:
            items = [build(cls, row) for row in answer.data[key]]
            total = int(answer.data["pagination"]["total"])
            more = bool(items) and offset + len(items) < total
            return Link(Page(items=items, total=total), call(offset + len(items)) if more else None)

        query = {**params, "limit": str(limit), "offset": str(offset)}
        return Call("GET", path, parse, params=query)

    return call(0)


def _page_size(value: int, maximum: int) -> int:
    if not 1 <= value <= maximum:
        raise ValueError(f"page_size must be between 1 and {maximum}")
    return value


def raw(
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    content: bytes | None = None,
    content_type: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Any]:
    """Any route; the answer is the envelope's data as plain JSON. A POST gets an
    Idempotency-Key like every POST of the client."""
    verb = method.upper()
    relative = path.lstrip("/").removeprefix(API_PATH.lstrip("/"))
    if verb == "POST" and idempotency_key is None:
        idempotency_key = new_idempotency_key()
    return Call(
        verb,
        relative,
        lambda answer: plain_json(answer.data),
        params=_query(**params) if params else None,
        json=json,
        content=content,
        content_type=content_type,
        idempotency_key=idempotency_key,
    )


# --- SMS -------------------------------------------------------------------------------------


def _send_result(key: str, answer: Answer) -> SendResult:
    replayed = answer.headers.get("Idempotent-Replayed", "").lower() == "true"
    return build(SendResult, answer.data, replayed=replayed, idempotency_key=key)


def sms_send(
    message: str | None = None,
    recipients: Iterable[str] | str = (),
    *,
    template_id: str | None = None,
    variables: Mapping[str, str] | None = None,
    sender_id: str | None = None,
    schedule_time: datetime | str | None = None,
    segment_ids: Iterable[str] = (),
    webhook_url: str | None = None,
    reply_to: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SendResult]:
    """Send ``message`` (or the text of the template ``template_id``) to ``recipients``
    (E.164 or local numbers) and the members of ``segment_ids``, now or at ``schedule_time``
    (an aware datetime or ISO 8601 with a zone).

    The text may hold placeholders: ``{{name}}``, ``{{phone}}``, ``{{KEY}}`` (one of
    ``variables``, else the contact's custom field) and ``{{KEY|default}}``; each recipient's
    text is rendered and priced on its own. ``reply_to`` (an inbound message, ``inb_...``)
    sends from the number that received it, to its sender when no recipients are given.

    The request carries an ``Idempotency-Key`` (a new UUID unless ``idempotency_key`` is
    given), so the client's retries never send twice; pass your own key to make your own
    retries safe too (the same key with the same body within 24 hours answers the first
    result, with ``replayed`` true).
    """
    if (message is None) == (template_id is None):
        raise ValueError("give message or template_id, not both")
    phones = [recipients] if isinstance(recipients, str) else list(recipients)
    body: dict[str, Any] = {"recipients": phones}
    if message is not None:
        body["message"] = message
    if template_id is not None:
        body["template_id"] = template_id
    if variables:
        body["variables"] = dict(variables)
    if reply_to is not None:
        body["reply_to"] = reply_to
    if sender_id is not None:
        body["sender_id"] = sender_id
    if schedule_time is not None:
        body["schedule_time"] = format_moment(schedule_time)
    segments = list(segment_ids)
    if segments:
        body["segment_ids"] = segments
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    key = idempotency_key or new_idempotency_key()
    return _post("sms/send/", functools.partial(_send_result, key), body, idempotency_key=key)


def sms_status(message_id: str, *, page: int = 1, per_page: int = 100) -> Call[MessageStatus]:
    """The message's status and counts, with one page of its recipients."""
    path = f"sms/status/{_segment(message_id, 'message_id')}/"
    return _get(path, _one(MessageStatus), page=page, per_page=per_page)


def sms_recipients(
    message_id: str, *, page_size: int = MAX_RECIPIENTS_PER_PAGE
) -> Call[Link[RecipientStatus]]:
    """Every recipient of a message with its status, page after page."""
    path = f"sms/status/{_segment(message_id, 'message_id')}/"
    size = _page_size(page_size, MAX_RECIPIENTS_PER_PAGE)
    return _numbered_pages(path, "recipients", RecipientStatus, size, {})


def sms_cancel(message_id: str) -> Call[CancelResult]:
    """Cancel a scheduled message; its cost is refunded (a queued one is ``ConflictError``)."""
    return _post(f"sms/{_segment(message_id, 'message_id')}/cancel/", _one(CancelResult))


def sms_messages(
    *,
    start_date: Moment | None = None,
    end_date: Moment | None = None,
    sender_id: str | None = None,
    phone: str | None = None,
    page_size: int = MAX_PER_PAGE,
) -> Call[Link[Message]]:
    """The account's messages, newest first, with their derived status and counts."""
    params = _query(start_date=start_date, end_date=end_date, sender_id=sender_id, phone=phone)
    return _numbered_pages(
        "sms/messages/", "messages", Message, _page_size(page_size, MAX_PER_PAGE), params
    )


def sms_message(message_id: str) -> Call[Message]:
    """One message."""
    return _get(f"sms/messages/{_segment(message_id, 'message_id')}/", _one(Message))


def sms_delivery_reports(
    *,
    start_date: Moment | None = None,
    end_date: Moment | None = None,
    status: str | None = None,
    page_size: int = MAX_PER_PAGE,
) -> Call[Link[DeliveryReport]]:
    """One row per recipient, newest first; dates filter on when the message was created
    (a bare date is the start, or for ``end_date`` the end, of that day in UTC)."""
    params = _query(start_date=start_date, end_date=end_date, status=status)
    return _numbered_pages(
        "sms/delivery-reports/",
        "reports",
        DeliveryReport,
        _page_size(page_size, MAX_PER_PAGE),
        params,
    )


def sms_sender_ids(*, page_size: int = MAX_PER_PAGE) -> Call[Link[SenderId]]:
    """The account's sender IDs: the platform default (always approved) first, then its own
    by name."""
    return _numbered_pages(
        "sms/sender-ids/", "sender_ids", SenderId, _page_size(page_size, MAX_PER_PAGE), {}
    )


def sms_request_sender_id(sender_id: str, *, purpose: str = "") -> Call[SenderId]:
    """Ask for a sender ID; it can be used once an operator approves it."""
    body = {"sender_id": sender_id, "purpose": purpose}
    return _post("sms/sender-ids/request/", _one(SenderId), body)


def balance() -> Call[Balance]:
    """The account's balance."""
    return _get("sms/balance/", _one(Balance))


# --- contacts --------------------------------------------------------------------------------


def contacts_create(
    name: str,
    phone_number: str,
    *,
    email: str | None = None,
    tags: Iterable[str] = (),
    is_active: bool = True,
    custom_fields: Mapping[str, str] | None = None,
) -> Call[Contact]:
    """A new contact (the phone number is stored as E.164; a duplicate is ``ConflictError``).
    ``custom_fields``: the account's own string fields (``{{KEY}}`` in personalised texts)."""
    body: dict[str, Any] = {"name": name, "phone_number": phone_number, "is_active": is_active}
    if email is not None:
        body["email"] = email
    body["tags"] = list(tags)
    if custom_fields:
        body["custom_fields"] = dict(custom_fields)
    return _post("contacts/create/", _one(Contact), body)


def contacts_get(contact_id: str) -> Call[Contact]:
    """One contact."""
    return _get(f"contacts/{_segment(contact_id, 'contact_id')}/", _one(Contact))


def contacts_update(
    contact_id: str,
    *,
    name: str = UNSET,
    phone_number: str = UNSET,
    email: str | None = UNSET,
    tags: list[str] = UNSET,
    is_active: bool = UNSET,
    custom_fields: Mapping[str, str | None] = UNSET,
) -> Call[Contact]:
    """Change the fields given; the others stay as they are. ``custom_fields`` are merged
    into the contact's: a key set to None is removed, keys not given stay."""
    body = _changes(
        name=name,
        phone_number=phone_number,
        email=email,
        tags=tags,
        is_active=is_active,
        custom_fields=dict(custom_fields) if custom_fields is not UNSET else UNSET,
    )
    path = f"contacts/{_segment(contact_id, 'contact_id')}/"
    return Call("PATCH", path, _one(Contact), json=body)


def _deleted(object_id: str) -> Callable[[], Deleted]:
    """A delete's result when a retry finds the object gone: an attempt whose answer was lost
    deleted it."""
    return lambda: Deleted(id=object_id, deleted=True)


def contacts_delete(contact_id: str) -> Call[Deleted]:
    """Delete a contact."""
    path = f"contacts/{_segment(contact_id, 'contact_id')}/"
    return Call("DELETE", path, _one(Deleted), gone_is_done=_deleted(contact_id))


def contacts_search(
    q: str = "", *, segment_id: str | None = None, page_size: int = MAX_PER_PAGE
) -> Call[Link[Contact]]:
    """Contacts whose name, email or phone contains ``q`` (every contact without it), newest
    first; ``segment_id`` keeps a segment's members only."""
    params = _query(q=q or None, segment_id=segment_id)
    return _offset_pages(
        "contacts/search/", "contacts", Contact, _page_size(page_size, MAX_PER_PAGE), params
    )


def contacts_opt_out(contact_id: str) -> Call[Contact]:
    """Opt a contact out: sends to it are refused from now on."""
    return _post(f"contacts/{_segment(contact_id, 'contact_id')}/opt-out/", _one(Contact))


def contacts_opt_in(contact_id: str) -> Call[Contact]:
    """Opt a contact back in."""
    return _post(f"contacts/{_segment(contact_id, 'contact_id')}/opt-in/", _one(Contact))


def _csv_bytes(source: CsvSource) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | os.PathLike):
        return Path(source).read_bytes()
    return source.read()


def contacts_import_csv(
    source: CsvSource,
    *,
    on_duplicate: Literal["skip", "update"] = "skip",
    compress: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Call[ImportResult]:
    """Import contacts from a CSV (a path, the file's bytes or a binary file) with the
    columns name, phone_number, email, tags, is_active. Rows with errors are listed in the
    result and left out; the rest is imported.

    The file is gzip-compressed on the way (unless it already is, or ``compress`` is False):
    the server's upload limit applies to what is sent. ``progress(sent, total)`` is called
    as the upload goes.
    """
    data = _csv_bytes(source)
    if compress and not data.startswith(_GZIP_MAGIC):
        data = gzip.compress(data, compresslevel=6, mtime=0)  # the same bytes on every retry
    return Call(
        "POST",
        "contacts/import/",
        _one(ImportResult),
        params={"on_duplicate": on_duplicate},
        content=data,
        content_type="text/csv",
        idempotency_key=new_idempotency_key(),
        progress=progress,
    )


def contacts_export_csv(*, segment_id: str | None = None) -> Call[str]:
    """The account's contacts (or a segment's members) as CSV text, in the import format."""
    return Call(
        "GET",
        "contacts/export/",
        lambda answer: answer.content.decode("utf-8"),
        params=_query(segment_id=segment_id) or None,
        envelope=False,
    )


# --- templates -------------------------------------------------------------------------------


def _template(template_id: str) -> str:
    return f"sms/templates/{_segment(template_id, 'template_id')}/"


def templates_list(*, page_size: int = MAX_PER_PAGE) -> Call[Link[Template]]:
    """The account's message templates, newest first."""
    return _offset_pages(
        "sms/templates/", "templates", Template, _page_size(page_size, MAX_PER_PAGE), {}
    )


def templates_create(name: str, text: str) -> Call[Template]:
    """A reusable text (``tpl_...``), placeholders allowed: ``{{name}}``, ``{{phone}}``,
    ``{{KEY}}`` and ``{{KEY|default}}``; a malformed placeholder is ``ValidationError``."""
    return _post("sms/templates/create/", _one(Template), {"name": name, "text": text})


def templates_get(template_id: str) -> Call[Template]:
    """One template."""
    return _get(_template(template_id), _one(Template))


def templates_update(template_id: str, *, name: str = UNSET, text: str = UNSET) -> Call[Template]:
    """Change the fields given; messages already sent keep their text."""
    return Call(
        "PATCH", _template(template_id), _one(Template), json=_changes(name=name, text=text)
    )


def templates_delete(template_id: str) -> Call[Deleted]:
    """Delete a template."""
    return Call("DELETE", _template(template_id), _one(Deleted), gone_is_done=_deleted(template_id))


# --- inbound messages ------------------------------------------------------------------------


def inbound_list(
    *,
    from_: str | None = None,
    to: str | None = None,
    keyword: str | None = None,
    action: str | None = None,
    start_date: Moment | None = None,
    end_date: Moment | None = None,
    page_size: int = MAX_PER_PAGE,
) -> Call[Link[InboundMessage]]:
    """Messages the account's numbers received, newest first; ``from_`` (the sender) and
    ``to`` (the receiving number) are phone numbers, ``action`` opt_out, opt_in or help."""
    params = _query(to=to, keyword=keyword, action=action, start_date=start_date, end_date=end_date)
    if from_ is not None:
        params["from"] = from_
    return _numbered_pages(
        "sms/inbound/", "inbound", InboundMessage, _page_size(page_size, MAX_PER_PAGE), params
    )


def inbound_get(inbound_id: str) -> Call[InboundMessage]:
    """One inbound message."""
    return _get(f"sms/inbound/{_segment(inbound_id, 'inbound_id')}/", _one(InboundMessage))


def inbound_simulate(from_: str, to: str, text: str) -> Call[InboundMessage]:
    """Receive ``text`` from ``from_`` on the account's number ``to`` as a carrier would
    deliver it (keywords, opt-outs, replies and webhooks included). Test keys only: a live
    key is ``PermissionDeniedError``."""
    body = {"from": from_, "to": to, "text": text}
    return _post("sms/inbound/simulate/", _one(InboundMessage), body)


# --- segments --------------------------------------------------------------------------------


def segments_list(*, page_size: int = MAX_PER_PAGE) -> Call[Link[Segment]]:
    """Every segment, with its contact count."""
    return _offset_pages(
        "contacts/segments/", "segments", Segment, _page_size(page_size, MAX_PER_PAGE), {}
    )


def segments_create(
    name: str, *, criteria: Mapping[str, Any] | None = None, description: str = ""
) -> Call[Segment]:
    """A saved filter over contacts. ``criteria`` keys, combined with AND: tags (any of),
    tags_all, is_active, opted_out, created_after, created_before."""
    body = {"name": name, "description": description, "criteria": dict(criteria or {})}
    return _post("contacts/segments/create/", _one(Segment), body)


def segments_get(segment_id: str) -> Call[Segment]:
    """One segment."""
    return _get(f"contacts/segments/{_segment(segment_id, 'segment_id')}/", _one(Segment))


def segments_update(
    segment_id: str,
    *,
    name: str = UNSET,
    description: str = UNSET,
    criteria: Mapping[str, Any] = UNSET,
) -> Call[Segment]:
    """Change the fields given; criteria are replaced as a whole."""
    body = _changes(
        name=name,
        description=description,
        criteria=dict(criteria) if criteria is not UNSET else UNSET,
    )
    path = f"contacts/segments/{_segment(segment_id, 'segment_id')}/"
    return Call("PATCH", path, _one(Segment), json=body)


def segments_delete(segment_id: str) -> Call[Deleted]:
    """Delete a segment (its contacts stay)."""
    path = f"contacts/segments/{_segment(segment_id, 'segment_id')}/"
    return Call("DELETE", path, _one(Deleted), gone_is_done=_deleted(segment_id))


def segments_contacts(segment_id: str, *, page_size: int = MAX_PER_PAGE) -> Call[Link[Contact]]:
    """The contacts matching the segment now, newest first."""
    path = f"contacts/segments/{_segment(segment_id, 'segment_id')}/contacts/"
    return _offset_pages(path, "contacts", Contact, _page_size(page_size, MAX_PER_PAGE), {})


# --- webhooks --------------------------------------------------------------------------------


def _webhook(webhook_id: str) -> str:
    return f"webhooks/{_segment(webhook_id, 'webhook_id')}/"


def _delivery(delivery_id: str, webhook_id: str | None) -> str:
    base = _webhook(webhook_id) if webhook_id is not None else "webhooks/"
    return f"{base}deliveries/{_segment(delivery_id, 'delivery_id')}/"


def _grace(seconds: int | None) -> dict[str, int]:
    return {} if seconds is None else {"grace_period_seconds": seconds}


def webhooks_list(*, page_size: int = MAX_PER_PAGE) -> Call[Link[WebhookEndpoint]]:
    """The account's webhook endpoints, oldest first."""
    return _numbered_pages(
        "webhooks/", "webhooks", WebhookEndpoint, _page_size(page_size, MAX_PER_PAGE), {}
    )


def webhooks_create(
    url: str,
    *,
    events: Iterable[str] | None = None,
    active: bool = True,
    description: str = "",
) -> Call[WebhookEndpoint]:
    """A new endpoint; the answer's ``secret`` signs its deliveries and is shown only here.
    ``events``: message.sent, message.delivered, message.failed, message.received,
    contact.opted_out, contact.opted_in, account.low_balance (all when None)."""
    body: dict[str, Any] = {"url": url, "active": active, "description": description}
    if events is not None:
        body["events"] = list(events)
    return _post("webhooks/", _one(WebhookEndpoint), body)


def webhooks_get(webhook_id: str) -> Call[WebhookEndpoint]:
    """One endpoint (without its secret)."""
    return _get(_webhook(webhook_id), _one(WebhookEndpoint))


def webhooks_update(
    webhook_id: str,
    *,
    url: str = UNSET,
    events: list[str] = UNSET,
    active: bool = UNSET,
    description: str = UNSET,
) -> Call[WebhookEndpoint]:
    """Change the fields given (``active=True`` turns a disabled endpoint back on)."""
    body = _changes(url=url, events=events, active=active, description=description)
    return Call("PATCH", _webhook(webhook_id), _one(WebhookEndpoint), json=body)


def webhooks_delete(webhook_id: str) -> Call[Deleted]:
    """Delete an endpoint and its delivery history."""
    return Call("DELETE", _webhook(webhook_id), _one(Deleted), gone_is_done=_deleted(webhook_id))


def webhooks_test(webhook_id: str) -> Call[WebhookDeliveryDetail]:
    """Send a ``message.test`` event to the endpoint now; the answer has the attempt."""
    # The server calls the receiver while we wait and keeps no idempotency record for it.
    return Call(
        "POST", f"{_webhook(webhook_id)}test/", _one(WebhookDeliveryDetail), replay_safe=False
    )


def webhooks_rotate_secret(
    webhook_id: str, *, grace_period_seconds: int | None = None
) -> Call[WebhookEndpoint]:
    """A new signing secret (in the answer); the old one keeps signing beside it for the
    grace period (default one day, 0 ends it now)."""
    path = f"{_webhook(webhook_id)}rotate-secret/"
    return _post(path, _one(WebhookEndpoint), _grace(grace_period_seconds))


def webhooks_deliveries(
    *,
    webhook_id: str | None = None,
    message_id: str | None = None,
    status: str | None = None,
    page_size: int = MAX_PER_PAGE,
) -> Call[Link[WebhookDelivery]]:
    """Deliveries, newest first: of one endpoint (``webhook_id``, admin keys), or of the
    account, optionally of one message (``message_id``, read keys too, the message's own
    webhook_url included). ``status``: pending, succeeded or failed."""
    size = _page_size(page_size, MAX_PER_PAGE)
    if webhook_id is not None:
        if message_id is not None:
            raise ValueError("give webhook_id or message_id, not both")
        path = f"{_webhook(webhook_id)}deliveries/"
        return _numbered_pages(path, "deliveries", WebhookDelivery, size, _query(status=status))
    params = _query(message_id=message_id, status=status)
    return _numbered_pages("webhooks/deliveries/", "deliveries", WebhookDelivery, size, params)


def webhooks_delivery(
    delivery_id: str, *, webhook_id: str | None = None
) -> Call[WebhookDeliveryDetail]:
    """One delivery with its payload and every attempt."""
    return _get(_delivery(delivery_id, webhook_id), _one(WebhookDeliveryDetail))


def webhooks_redeliver(delivery_id: str, *, webhook_id: str | None = None) -> Call[WebhookDelivery]:
    """Queue a new delivery of a finished delivery's event (same event_id and body)."""
    return _post(f"{_delivery(delivery_id, webhook_id)}redeliver/", _one(WebhookDelivery))


def webhooks_signing_secret() -> Call[SigningSecret]:
    """The account's secret for deliveries to a message's own webhook_url."""
    return _get("webhooks/signing-secret/", _one(SigningSecret))


def webhooks_rotate_signing_secret(
    *, grace_period_seconds: int | None = None
) -> Call[SigningSecret]:
    """Rotate the account's signing secret (the old one signs beside it for the grace period)."""
    return _post(
        "webhooks/signing-secret/rotate/", _one(SigningSecret), _grace(grace_period_seconds)
    )


# --- API keys --------------------------------------------------------------------------------


def keys_list(*, page_size: int = MAX_PER_PAGE) -> Call[Link[ApiKey]]:
    """The account's API keys (never the secrets), newest first."""
    return _numbered_pages("keys/", "keys", ApiKey, _page_size(page_size, MAX_PER_PAGE), {})


def keys_create(
    name: str,
    *,
    permissions: Literal["read", "write", "admin"] = "write",
    test: bool = False,
    expires_at: datetime | None = None,
) -> Call[NewApiKey]:
    """A new key; the raw key is in the answer's ``key`` and shown only there."""
    body: dict[str, Any] = {"name": name, "permissions": permissions, "test": test}
    if expires_at is not None:
        body["expires_at"] = format_moment(expires_at)
    # The server keeps no idempotency record of an answer holding a raw key.
    return Call("POST", "keys/create/", _one(NewApiKey), json=body, replay_safe=False)


def keys_revoke(key_id: int) -> Call[ApiKey]:
    """Revoke a key: it stops working at once."""
    return _post(f"keys/{_segment(key_id, 'key_id')}/revoke/", _one(ApiKey))


def keys_rotate(key_id: int) -> Call[NewApiKey]:
    """A new key (a new id, the same name, permissions and mode; its secret in the answer's
    ``key``) replaces this one, which stops working at once."""
    path = f"keys/{_segment(key_id, 'key_id')}/rotate/"
    return Call("POST", path, _one(NewApiKey), replay_safe=False)
