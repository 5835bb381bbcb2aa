"""How a receiver checks ``X-Mifumo-Signature`` (the example in webhooks/README.md).

Standard library only, so it can be copied into any Python receiver as it is.
"""

import hashlib
import hmac
import time


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True if ``header`` signs ``body`` (the raw request bytes) with ``secret`` and its
    timestamp is within ``tolerance`` seconds of now (which stops replays of old requests)."""
    timestamp = None
    signatures = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(time.time() - timestamp) > tolerance:
        return False
    signed = str(timestamp).encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    # compare_digest takes the same time wherever the bytes differ (as bytes: a header may
    # hold characters that are not ASCII, which it refuses to compare as strings).
    return any(
        hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
        for candidate in signatures
    )
