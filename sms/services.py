"""Sending: validate, price, charge and store a message in one transaction, then hand it
to the dispatcher after commit."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contacts.selectors import contact_fields_by_phone, opted_out_phones
from integration.audit import Action, AuditContext
from integration.models import Account, ApiKey
from integration.services import account_debit, account_refund, debit_entry
from mifumo.db import copy_rows, insert_row
from mifumo.errors import DomainError, ErrorCode
from mifumo.ids import new_id
from segments.selectors import segment_member_phones
from sms import encoding
from sms.dispatch.wake import dispatch_wake_soon
from sms.models import Message, Recipient
from sms.personalise import (
    MAX_REPORTED,
    RecipientValues,
    Template,
    TemplateError,
    parse_template,
    refuse_unsendable,
    render_all,
)
from sms.phones import parse_phones
from sms.pricing import price_phones
from sms.schedule_time import parse_schedule_time
from sms.send_statement import ONE_STATEMENT_MAX, send_in_one_statement
from sms.sender_ids import sender_id_format_error, sender_id_is_approved
from webhooks.security import validate_webhook_url

logger = logging.getLogger(__name__)

ZERO = Decimal("0.00")


@dataclass
class SendResult:
    message: Message
    recipients: list[str]
    status: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    from_segments: dict[str, int] = field(default_factory=dict)


def _check_text(text: str, account: Account) -> encoding.TextInfo:
    info = encoding.analyze(text)
    limit = account.message_length_limit
    if info.length > limit:
        raise DomainError(
            ErrorCode.MESSAGE_TOO_LONG,
            f"The message is {info.length} characters; the limit is {limit}",
            {
                "length": info.length,
                "limit": limit,
                "encoding": info.encoding,
                "segments": info.segments,
            },
        )
    return info


def _check_sender(sender_id: str, account: Account) -> None:
    problem = sender_id_format_error(sender_id)
    if problem:
        raise DomainError(ErrorCode.INVALID_SENDER_ID, problem, {"sender_id": sender_id})
    if not sender_id_is_approved(account=account, value=sender_id):
        raise DomainError(
            ErrorCode.INVALID_SENDER_ID,
            f"Sender ID {sender_id} is not approved for this account",
            {"sender_id": sender_id},
        )


def _check_count(count: int, limit: int, what: str = "per request") -> None:
    if count > limit:
        raise DomainError(
            ErrorCode.TOO_MANY_RECIPIENTS,
            f"{count} recipients; at most {limit} {what}",
            {"count": count, "limit": limit},
        )


def _resolve_recipients(
    *, account: Account, raw_recipients: Sequence[object], segment_ids: Sequence[str]
) -> tuple[list[str], dict[str, str | None]]:
    """Every number to send to, each with the segment it came from (None: listed)."""
    _check_count(len(raw_recipients), settings.MIFUMO_MAX_RECIPIENTS)
    parsed = parse_phones(raw_recipients)
    if parsed.invalid:
        raise DomainError(
            ErrorCode.INVALID_PHONE,
            f"{len(parsed.invalid)} recipient(s) are not valid mobile numbers",
            {"invalid": parsed.invalid},
        )
    source: dict[str, str | None] = dict.fromkeys(parsed.valid)
    if segment_ids:
        members = segment_member_phones(account=account, segment_ids=list(segment_ids))
        for segment_id, segment_phones in members.items():
            for phone in segment_phones:
                source.setdefault(phone, segment_id)
    return list(source), source


def _count_by_segment(
    phones: list[str], source: dict[str, str | None], segment_ids: Sequence[str]
) -> dict[str, int]:
    """How many of the numbers sent to each segment added (after de-duplication, listed
    numbers first, and opt-outs)."""
    counts = dict.fromkeys(segment_ids, 0)
    for phone in phones:
        segment_id = source[phone]
        if segment_id is not None:
            counts[segment_id] += 1
    return counts


def _drop_opted_out(account: Account, phones: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    opted_out = opted_out_phones(account=account, phones=phones)
    if not opted_out:
        return phones, []
    kept = [p for p in phones if p not in opted_out]
    skipped = [{"phone": p, "reason": "opted_out"} for p in phones if p in opted_out]
    if not kept:
        raise DomainError(
            ErrorCode.OPTED_OUT,
            "Every recipient has opted out of messages from this account",
            {"skipped": skipped},
        )
    return kept, skipped


def _template(text: str) -> Template | None:
    """The text's placeholders (None: a plain text); a malformed one is a 400."""
    try:
        return parse_template(text)
    except TemplateError as exc:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            f"The message has a malformed placeholder: {exc.problems[0]}",
            {"message": exc.problems},
        ) from None


@dataclass(frozen=True)
class Personalised:
    texts: dict[str, str]  # phone -> its rendered text
    parts: dict[str, int]  # phone -> its part count
    info: encoding.TextInfo  # the largest text, with UCS-2 when any text needs it


def _personalise(
    *,
    account: Account,
    template: Template,
    phones: list[str],
    variables: Mapping[str, str],
) -> Personalised:
    """Render, measure and check every recipient's text. Raises VALIDATION_ERROR for values
    missing or an empty text, MESSAGE_TOO_LONG for texts over the limit, naming recipients."""
    # An empty variable stands aside for the contact's own field, then the default.
    wanted = template.keys - {key for key, value in variables.items() if value} - {"phone"}
    known = contact_fields_by_phone(account=account, phones=phones) if wanted else {}
    limit = account.message_length_limit
    rendered = render_all(
        template,
        (RecipientValues(phone, *known.get(phone, (None, None))) for phone in phones),
        variables,
        limit=limit,
    )
    refuse_unsendable(rendered)
    over = rendered.over
    if over:
        raise DomainError(
            ErrorCode.MESSAGE_TOO_LONG,
            f"{len(over)} recipient(s) would get a text over the limit of {limit} characters "
            f"(first: {over[0][0]}, {over[0][1]} characters)",
            {
                "limit": limit,
                "over": [{"phone": p, "length": n} for p, n in over[:MAX_REPORTED]],
                "over_count": len(over),
            },
        )
    infos: dict[str, encoding.TextInfo] = {}
    measured: dict[str, encoding.TextInfo] = {}
    for phone, text in rendered.texts.items():
        info = measured.get(text)
        if info is None:
            info = measured[text] = encoding.analyze(text)
        infos[phone] = info
    largest = max(infos.values(), key=lambda info: (info.segments, info.units))
    if any(info.encoding == encoding.UCS2 for info in infos.values()):
        largest = replace(largest, encoding=encoding.UCS2)
    return Personalised(
        texts=rendered.texts,
        parts={phone: info.segments for phone, info in infos.items()},
        info=largest,
    )


@dataclass(frozen=True)
class SendPlan:
    """A send checked and priced, before anything is written or charged."""

    text: str
    info: encoding.TextInfo
    sender_id: str
    schedule_time: datetime | None
    webhook_url: str
    phones: list[str]
    skipped: list[dict[str, str]]
    from_segments: dict[str, int]
    costs: dict[str, Decimal]  # phone -> what that recipient costs (nothing for a test key)
    is_test: bool
    # Personalised: phone -> its rendered text and part count (None for a plain text).
    texts: dict[str, str] | None = None
    parts: dict[str, int] | None = None
    # False: opted-out numbers are still in ``phones``, for the send's statement to find.
    opt_outs_checked: bool = True

    @property
    def cost(self) -> Decimal:
        return sum(self.costs.values(), ZERO)


def message_quote(
    *,
    account: Account,
    text: str,
    recipients: Sequence[object] = (),
    segment_ids: Sequence[str] = (),
    sender_id: str | None = None,
    schedule_time: object = None,
    webhook_url: str | None = None,
    api_key: ApiKey | None = None,
    variables: Mapping[str, str] | None = None,
    defer_opt_outs: bool = False,
) -> SendPlan:
    """What ``message_send`` with these arguments would send and charge: every check of a
    send, in the order the API reports them (the same errors), and its price, with nothing
    written. The send itself starts here; the dashboard shows it as a preview.

    A text with placeholders (``sms.personalise``) is rendered for each recipient from
    ``variables`` and the contact's fields, and each text is measured and priced alone.

    ``defer_opt_outs`` (for ``message_send``): a small plain-text send leaves opted-out
    numbers in the plan (``opt_outs_checked`` False), for its one statement to find."""
    is_test = bool(api_key and api_key.is_test)
    if not text or not text.strip():
        raise DomainError(
            ErrorCode.VALIDATION_ERROR, "The message is empty", {"message": ["must not be blank"]}
        )
    if not recipients and not segment_ids:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "Give recipients, segment_ids or both",
            {"recipients": ["at least one recipient is required"]},
        )
    template = _template(text)
    info = _check_text(text, account) if template is None else None
    sender = (sender_id or settings.MIFUMO_DEFAULT_SENDER_ID).strip()
    _check_sender(sender, account)
    when = parse_schedule_time(schedule_time)
    if webhook_url:
        webhook_url = validate_webhook_url(webhook_url)
    phones, origin = _resolve_recipients(
        account=account, raw_recipients=recipients, segment_ids=segment_ids
    )
    # Segments are stored server-side, so a send may reach far more numbers than one request
    # can list; the total has its own, larger limit.
    if segment_ids:
        _check_count(len(phones), settings.MIFUMO_MAX_SEGMENT_RECIPIENTS, "per send")
    if not phones:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "The segments have no members and no recipients were given",
            {"recipients": ["no recipients"]},
        )
    defer = defer_opt_outs and template is None and len(phones) <= ONE_STATEMENT_MAX
    skipped: list[dict[str, str]] = []
    if not defer:
        phones, skipped = _drop_opted_out(account, phones)
    from_segments = _count_by_segment(phones, origin, list(dict.fromkeys(segment_ids)))
    personalised = None
    if template is not None:
        personalised = _personalise(
            account=account, template=template, phones=phones, variables=variables or {}
        )
        info = personalised.info
    assert info is not None
    quote = price_phones(phones)
    if quote.unsupported and defer:
        # Opted-out numbers are skipped before pricing: one may be among the unsupported.
        phones, skipped = _drop_opted_out(account, phones)
        from_segments = _count_by_segment(phones, origin, list(dict.fromkeys(segment_ids)))
        quote, defer = price_phones(phones), False
    if quote.unsupported:
        raise DomainError(
            ErrorCode.UNSUPPORTED_DESTINATION,
            f"No route covers {len(quote.unsupported)} recipient(s)",
            {"unsupported": quote.unsupported},
        )
    if personalised is None:
        costs = {p: (ZERO if is_test else quote.prices[p] * info.segments) for p in phones}
    else:
        parts = personalised.parts
        costs = {p: (ZERO if is_test else quote.prices[p] * parts[p]) for p in phones}
    return SendPlan(
        text=text,
        info=info,
        sender_id=sender,
        schedule_time=when,
        webhook_url=webhook_url or "",
        phones=phones,
        skipped=skipped,
        from_segments=from_segments,
        costs=costs,
        is_test=is_test,
        texts=personalised.texts if personalised else None,
        parts=personalised.parts if personalised else None,
        opt_outs_checked=not defer,
    )


def message_send(
    *,
    account: Account,
    text: str,
    recipients: Sequence[object] = (),
    segment_ids: Sequence[str] = (),
    sender_id: str | None = None,
    schedule_time: object = None,
    webhook_url: str | None = None,
    api_key: ApiKey | None = None,
    source: str = Message.Source.API,
    variables: Mapping[str, str] | None = None,
    audit: AuditContext | None = None,
) -> SendResult:
    """Check, price, charge and store a send. Up to ONE_STATEMENT_MAX recipients without an
    activity-log entry (API sends of that size) take one statement (``sms.send_statement``); when
    that writes nothing (an opted-out number, a balance short of the cost) the general path
    runs and reports why. A suspended account sends nothing, whoever asks."""
    if not account.is_active:
        raise DomainError(ErrorCode.PERMISSION_DENIED, "This account is suspended")

    def quote(*, defer_opt_outs: bool) -> SendPlan:
        return message_quote(
            account=account,
            text=text,
            recipients=recipients,
            segment_ids=segment_ids,
            sender_id=sender_id,
            schedule_time=schedule_time,
            webhook_url=webhook_url,
            api_key=api_key,
            variables=variables,
            defer_opt_outs=defer_opt_outs,
        )

    one_statement = audit is None
    plan = quote(defer_opt_outs=one_statement)
    if one_statement and len(plan.phones) <= ONE_STATEMENT_MAX:
        result = _send_in_one_statement(account, plan, api_key=api_key, source=source)
        if result is not None:
            return result
        if not plan.opt_outs_checked:
            plan = quote(defer_opt_outs=False)
    # A savepoint when nested: a refused debit must take the rows written before it along.
    with transaction.atomic():
        if opted_out_phones(account=account, phones=plan.phones):
            plan = quote(defer_opt_outs=False)  # a phone opted out while the send was priced
        message, status = _new_message(account, plan, api_key=api_key, source=source)
        insert_row(message)
        copy_rows(Recipient, RECIPIENT_FIELDS, _recipient_rows(message, plan, status))
        if audit is not None:
            audit.record(
                account=account,
                action=Action.MESSAGE_SENT,
                target=message.pk,
                details={
                    "recipients": message.recipient_count,
                    "cost": message.cost,
                    "sender_id": message.sender_id,
                    "schedule_time": message.schedule_time,
                },
            )
        # The debit comes last: it locks the account's balance row until the commit, and
        # every send of the account waits on that lock.
        if message.cost > 0:
            account_debit(
                account_id=account.pk, amount=message.cost, reference=message.id, note=_note(plan)
            )
        _dispatch_after_commit(message)
    return _result(message, plan, status)


def _new_message(
    account: Account, plan: SendPlan, *, api_key: ApiKey | None, source: str
) -> tuple[Message, str]:
    """The message row of ``plan``, not yet stored, and its recipients' first status."""
    when = plan.schedule_time
    status = Recipient.Status.SCHEDULED if when else Recipient.Status.QUEUED
    message = Message(
        id=new_id("msg"),
        account=account,
        api_key=api_key,
        source=source,
        text=plan.text,
        personalised=plan.texts is not None,
        sender_id=plan.sender_id,
        encoding=plan.info.encoding,
        segments=plan.info.segments,
        recipient_count=len(plan.phones),
        cost=plan.cost,
        currency=account.currency,
        is_test=plan.is_test,
        schedule_time=when,
        webhook_url=plan.webhook_url,
        created_at=timezone.now(),
    )
    return message, status


def _note(plan: SendPlan) -> str:
    """The note of the send's ledger row."""
    if plan.parts is not None:
        return f"{len(plan.phones)} personalised recipients, {sum(plan.parts.values())} parts"
    return f"{len(plan.phones)} recipients x {plan.info.segments} parts"


def _dispatch_after_commit(message: Message) -> None:
    if message.schedule_time is None:
        transaction.on_commit(lambda: _enqueue_dispatch(message.id))


def _result(message: Message, plan: SendPlan, status: str) -> SendResult:
    return SendResult(
        message=message,
        recipients=plan.phones,
        status=status,
        skipped=plan.skipped,
        from_segments=plan.from_segments,
    )


def _send_in_one_statement(
    account: Account, plan: SendPlan, *, api_key: ApiKey | None, source: str
) -> SendResult | None:
    """The send written by one statement, or None when it wrote nothing."""
    message, status = _new_message(account, plan, api_key=api_key, source=source)
    rows = list(_recipient_rows(message, plan, status))
    debit = None
    if message.cost > 0:
        debit = debit_entry(
            account_id=account.pk, amount=message.cost, reference=message.id, note=_note(plan)
        )
    # The columns that differ between recipients travel as arrays, the rest once (every array
    # costs the driver a scan of its values); one recipient (most sends) needs no array.
    columns = dict(zip(RECIPIENT_FIELDS, zip(*rows, strict=True), strict=True))
    varying = RECIPIENT_VARYING if len(rows) > 1 else ()
    outcome = send_in_one_statement(
        message=message,
        phones=plan.phones,
        recipients={name: list(columns[name]) for name in varying},
        same={name: values[0] for name, values in columns.items() if name not in varying},
        debit=debit,
    )
    if not outcome.written:
        return None
    _dispatch_after_commit(message)
    return _result(message, plan, status)


# fmt: off
RECIPIENT_FIELDS = (
    "message_id", "account_id", "created_at", "updated_at", "phone", "status", "text",
    "segments", "cost", "carrier", "carrier_message_id", "error_code", "error_message",
    "attempts",
)
# fmt: on
# The fields whose values differ between a send's recipients.
RECIPIENT_VARYING = ("phone", "text", "segments", "cost")


def _recipient_rows(message: Message, plan: SendPlan, status: str) -> Iterator[tuple[Any, ...]]:
    """One row per recipient, values in the order of RECIPIENT_FIELDS. The general path
    stores them with COPY: for a 100,000-member segment the ORM's bulk insert spent most of
    the send building and quoting parameters."""
    now = message.created_at
    texts = plan.texts or {}
    parts = plan.parts or {}
    segments = plan.info.segments
    rest = ("", "", "", "", 0)  # carrier, its id, error code and message, attempts
    for phone in plan.phones:
        text, count, cost = texts.get(phone, ""), parts.get(phone, segments), plan.costs[phone]
        yield (message.id, message.account_id, now, now, phone, status, text, count, cost, *rest)


def _enqueue_dispatch(message_id: str) -> None:
    """Wake the dispatcher (one task per wake window, not per send; with a coalescing window
    set, through the process's waker thread; trouble is logged, the sweep covers)."""
    dispatch_wake_soon()


def message_cancel(
    *, account: Account, message_id: str, audit: AuditContext | None = None
) -> tuple[Message, int, Decimal]:
    """Cancel a scheduled message and refund it. Anything already queued -> CONFLICT."""
    with transaction.atomic():
        # The message row lock orders this against the scheduler releasing the message.
        message = Message.objects.select_for_update().filter(account=account, pk=message_id).first()
        if message is None:
            raise DomainError(ErrorCode.NOT_FOUND, "Message not found")
        rows = Recipient.objects.filter(message=message, status=Recipient.Status.SCHEDULED)
        refund = sum(rows.values_list("cost", flat=True), ZERO)
        canceled = rows.update(status=Recipient.Status.CANCELED, updated_at=timezone.now())
        if not canceled:
            why = "was canceled already" if message.canceled_at else "is already on its way"
            raise DomainError(
                ErrorCode.CONFLICT,
                f"Only a scheduled message can be canceled; this one {why}",
                {"message_id": message.id},
            )
        message.canceled_at = timezone.now()
        message.save(update_fields=["canceled_at"])
        if audit is not None:
            audit.record(
                account=account,
                action=Action.MESSAGE_CANCELED,
                target=message.pk,
                details={"recipients": canceled, "refund": refund},
            )
        if refund > 0:
            account_refund(
                account_id=account.pk, amount=refund, reference=message.id, note="canceled"
            )
    return message, canceled, refund
