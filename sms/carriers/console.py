"""Prints each message to standard output; accepts everything and sends no receipts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from ulid import ULID

from sms.carriers.base import BaseCarrier, OutboundSms, SubmitResult


class ConsoleCarrier(BaseCarrier):
    carrier_name = "console"

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        results = []
        for sms in batch:
            sys.stdout.write(f"[sms] {sms.sender_id} -> {sms.to}: {sms.text}\n")
            results.append(SubmitResult.ok(sms, f"console-{ULID()}"))
        sys.stdout.flush()
        return results
