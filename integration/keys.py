"""API key material: generation, digests and the encrypted copy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from functools import lru_cache

from cryptography.fernet import Fernet
from django.conf import settings

ALPHABET = string.ascii_letters + string.digits  # base62
SECRET_LENGTH = 32
LOOKUP_CHARS = 8
KEY_RE = re.compile(r"^mif_(live|test)_[0-9A-Za-z]{32}$")


def generate(*, test: bool) -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return f"mif_{'test' if test else 'live'}_{body}"


def is_well_formed(raw: str) -> bool:
    return KEY_RE.match(raw) is not None


def lookup_prefix(raw: str) -> str:
    """The indexed part: "mif_live_" plus the first characters of the secret."""
    head, _, body = raw.rpartition("_")
    return f"{head}_{body[:LOOKUP_CHARS]}"


def digest(raw: str) -> str:
    return hmac.new(
        settings.MIFUMO_KEY_HMAC_SECRET.encode(), raw.encode(), hashlib.sha256
    ).hexdigest()


def matches(raw: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(raw), stored_digest)


@lru_cache(maxsize=4)
def _fernet(configured: str | None, secret_key: str) -> Fernet:
    if configured:
        return Fernet(configured.encode())
    derived = hashlib.sha256(b"mifumo-api-key-encryption:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def _cipher() -> Fernet:
    return _fernet(settings.MIFUMO_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(raw: str) -> str:
    return _cipher().encrypt(raw.encode()).decode()


def decrypt(token: str) -> str:
    return _cipher().decrypt(token.encode()).decode()
