"""Webhook endpoints and signing secrets: what an account's receivers are and how events to
them are signed.

An endpoint (``Endpoint``) receives the events it subscribes to, of its mode (live or test
traffic); a message's own ``webhook_url`` is signed with the account's secret for that mode
(``account_signing_secret_ensure``). Rotating a secret keeps the old one signing alongside
the new for a grace period, so receivers can switch without losing an event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integration import keys
from integration.audit import Action, AuditContext
from integration.models import Account
from mifumo.db import lock_until_commit
from mifumo.errors import DomainError, ErrorCode
from webhooks import security, signing
from webhooks.models import (
    SUBSCRIBABLE_EVENTS,
    AccountSigningSecret,
    AccountTestSigningSecret,
    Endpoint,
    SigningSecretFields,
)

DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_GRACE_SECONDS = 7 * 24 * 3600


def _secret_fields(secret: str) -> dict[str, Any]:
    return {"secret_encrypted": keys.encrypt(secret)}


def _events(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return list(SUBSCRIBABLE_EVENTS)
    chosen = set(events)
    unknown = chosen - set(SUBSCRIBABLE_EVENTS)
    if unknown or not chosen:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "Unknown or missing events",
            {"events": [f"Choose one or more of: {', '.join(SUBSCRIBABLE_EVENTS)}"]},
        )
    # Stored in the catalogue's order, whatever order they came in.
    return [e for e in SUBSCRIBABLE_EVENTS if e in chosen]


def _check_room(account: Account) -> None:
    """Refuse an endpoint past the account's limit; two creations count one after the other."""
    lock_until_commit(f"webhook-endpoints:{account.pk}")
    limit = settings.MIFUMO_MAX_WEBHOOK_ENDPOINTS
    count = Endpoint.objects.filter(account=account).count()
    if count >= limit:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"This account has {count} webhook endpoints, the most it may have; delete one "
            "(or subscribe one to more events) first",
            {"limit": limit, "count": count},
        )


def endpoint_create(
    *,
    account: Account,
    url: str,
    events: Iterable[str] | None = None,
    active: bool = True,
    description: str = "",
    test: bool = False,
    audit: AuditContext | None = None,
) -> Endpoint:
    """``test``: the endpoint receives test traffic only; otherwise live traffic only."""
    url = security.validate_webhook_url(url, field="url")
    with transaction.atomic():
        _check_room(account)
        endpoint = Endpoint.objects.create(
            account=account,
            url=url,
            events=_events(events),
            active=active,
            is_test=test,
            description=description,
            **_secret_fields(signing.generate_secret()),
        )
        if audit is not None:
            audit.record(
                account=account,
                action=Action.WEBHOOK_CREATED,
                target=endpoint.pk,
                details={
                    "url": endpoint.url,
                    "events": endpoint.events,
                    "mode": "test" if test else "live",
                },
            )
    return endpoint


def endpoint_update(
    *,
    endpoint: Endpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
    audit: AuditContext | None = None,
) -> Endpoint:
    """Change what is given; reactivating an endpoint clears why it was disabled. The
    activity log names the fields whose value changed."""
    before = _logged_fields(endpoint)
    if url is not None:
        endpoint.url = security.validate_webhook_url(url, field="url")
    if events is not None:
        endpoint.events = _events(events)
    if description is not None:
        endpoint.description = description
    if active is not None:
        endpoint.active = active
        if active:
            endpoint.disabled_reason = ""
            endpoint.disabled_at = None
    endpoint.updated_at = timezone.now()
    with transaction.atomic():
        endpoint.save()
        if audit is not None:
            after = _logged_fields(endpoint)
            audit.record(
                account=endpoint.account_id,
                action=Action.WEBHOOK_UPDATED,
                target=endpoint.pk,
                details={k: v for k, v in after.items() if v != before[k]},
            )
    return endpoint


def _logged_fields(endpoint: Endpoint) -> dict[str, Any]:
    return {"url": endpoint.url, "events": list(endpoint.events), "active": endpoint.active}


def endpoint_delete(*, endpoint: Endpoint, audit: AuditContext | None = None) -> None:
    with transaction.atomic():
        if audit is not None:
            audit.record(
                account=endpoint.account_id,
                action=Action.WEBHOOK_DELETED,
                target=endpoint.pk,
                details={"url": endpoint.url},
            )
        endpoint.delete()


def _rotate(holder: SigningSecretFields, grace_seconds: int) -> None:
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise DomainError(
            ErrorCode.VALIDATION_ERROR,
            "The grace period is out of range",
            {"grace_period_seconds": [f"Between 0 and {MAX_GRACE_SECONDS}"]},
        )
    now = timezone.now()
    if grace_seconds:
        holder.previous_secret_encrypted = holder.secret_encrypted
        holder.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
    else:
        holder.previous_secret_encrypted = ""
        holder.previous_secret_expires_at = None
    holder.secret_encrypted = keys.encrypt(signing.generate_secret())
    holder.secret_rotated_at = now


def endpoint_rotate_secret(
    *,
    endpoint: Endpoint,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    audit: AuditContext | None = None,
) -> Endpoint:
    """A new signing secret; the old one keeps signing alongside it for ``grace_seconds``."""
    _rotate(endpoint, grace_seconds)
    endpoint.updated_at = timezone.now()
    with transaction.atomic():
        endpoint.save()
        if audit is not None:
            audit.record(
                account=endpoint.account_id,
                action=Action.WEBHOOK_SECRET_ROTATED,
                target=endpoint.pk,
                details={"grace_seconds": grace_seconds},
            )
    return endpoint


def endpoint_disable(*, endpoint_id: str, reason: str) -> None:
    Endpoint.objects.filter(pk=endpoint_id, active=True).update(
        active=False, disabled_reason=reason[:255], disabled_at=timezone.now()
    )


AccountSecret = AccountSigningSecret | AccountTestSigningSecret


def _account_secret_model(test: bool) -> type[AccountSecret]:
    return AccountTestSigningSecret if test else AccountSigningSecret


def account_signing_secret_ensure(*, account_id: int, test: bool = False) -> AccountSecret:
    """The account's secret for message-level webhook_url deliveries of live (or, with
    ``test``, test) messages, made on first use."""
    model = _account_secret_model(test)
    existing = model.objects.filter(account_id=account_id).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return model.objects.create(
                account_id=account_id, **_secret_fields(signing.generate_secret())
            )
    except IntegrityError:
        # Another process made it first.
        return model.objects.get(account_id=account_id)


def account_signing_secret_rotate(
    *,
    account_id: int,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    test: bool = False,
    audit: AuditContext | None = None,
) -> AccountSecret:
    holder = account_signing_secret_ensure(account_id=account_id, test=test)
    _rotate(holder, grace_seconds)
    with transaction.atomic():
        holder.save()
        if audit is not None:
            audit.record(
                account=account_id,
                action=Action.SIGNING_SECRET_ROTATED,
                target=f"account signing secret ({'test' if test else 'live'})",
                details={"grace_seconds": grace_seconds},
            )
    return holder
