"""Idempotency-Key for POST requests (DESIGN.md).

The record is inserted first, in the same transaction as the work, so a concurrent
duplicate blocks on the unique index until the first commits, then replays its response.
Errors roll the record back with everything else: a failed request may be retried with
the same key.

A response that carries a secret (a view with ``replay_holds_secret``: a webhook signing
secret) is kept encrypted, like the secret itself, and decrypted to replay it. Responses
with a raw API key are never kept (those views are not idempotent at all).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from integration import keys
from integration.auth import ApiPrincipal
from integration.models import IdempotencyRecord
from mifumo.errors import DomainError, ErrorCode

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255

Handler = Callable[..., Response]


def _request_hash(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data = request.data
    files = getattr(request, "FILES", None) or {}
    fields = {k: v for k, v in data.items() if k not in files} if hasattr(data, "items") else data
    try:
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    except (TypeError, ValueError):
        digest.update(repr(fields).encode())
    # An upload is identified by its content, not its name.
    for name in sorted(files):
        upload = files[name]
        digest.update(f"\n{name}:".encode())
        for chunk in upload.chunks():
            digest.update(chunk)
        upload.seek(0)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        raise DomainError(
            ErrorCode.CONFLICT,
            "This Idempotency-Key was already used with a different request",
            {"idempotency_key": record.key},
        )
    body = (
        json.loads(keys.decrypt(record.response_sealed))
        if record.response_sealed
        else record.response_body
    )
    response = Response(body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(handler: Handler) -> Handler:
    """Decorates an ``ApiView``'s ``post``: a repeat with the same Idempotency-Key replays
    the first answer instead of doing the work again."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get("Idempotency-Key")
        principal = request.user
        if key is None or not isinstance(principal, ApiPrincipal):
            return handler(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise DomainError(
                ErrorCode.VALIDATION_ERROR,
                "Idempotency-Key must be 1 to 255 printable characters",
                {"Idempotency-Key": ["invalid"]},
            )
        # Test and live traffic never share an answer: a test key's record is not replayed
        # to a live key (no live message would be sent), nor a live one to a test key.
        mine = {"account": principal.account, "is_test": principal.api_key.is_test, "key": key}
        request_hash = _request_hash(request)
        IdempotencyRecord.objects.filter(**mine, created_at__lt=timezone.now() - TTL).delete()
        existing = IdempotencyRecord.objects.filter(**mine).first()
        if existing is not None:
            return _replay(existing, request_hash)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    **mine,
                    request_hash=request_hash,
                    response_status=0,
                    response_body={},
                )
                response = handler(view, request, *args, **kwargs)
                record.response_status = response.status_code
                if getattr(view, "replay_holds_secret", False):
                    record.response_sealed = keys.encrypt(json.dumps(response.data))
                else:
                    record.response_body = response.data
                record.save(update_fields=["response_status", "response_body", "response_sealed"])
                return response
        except IntegrityError:
            # Another request with this key committed first.
            existing = IdempotencyRecord.objects.filter(**mine).first()
            if existing is None:
                raise
            return _replay(existing, request_hash)

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return wrapper


def is_idempotent(handler: Callable[..., Any]) -> bool:
    return getattr(handler, "idempotent", False) is True


def purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - TTL).delete()
    return deleted
