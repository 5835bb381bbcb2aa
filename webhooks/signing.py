"""Signing secrets and the ``X-Mifumo-Signature`` header.

``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, the key being the whole secret
string (``whsec_…``) as UTF-8. During a secret rotation's grace period the header carries one
``v1`` per valid secret, newest first; a receiver accepts the request if any of them matches.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={signature(secret, timestamp, body)}" for secret in signing_secrets)
    return ",".join(parts)
