"""The simulator: accepts everything plausible and reports delivery after a delay.

Magic numbers for integrators (last four digits of the destination):
- ``0001`` is always undeliverable (a failed receipt),
- ``0002`` is always rejected at submit (refunded),
- ``0003`` never gets a receipt, so it expires,
- ``0004`` is a temporary carrier failure at submit, retried, then failed.
Other numbers are delivered, or fail with probability FAILURE_RATIO.
Options: DELIVERY_DELAY (seconds, default 1), FAILURE_RATIO (0.0).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from ulid import ULID

from sms.carriers.base import (
    BaseCarrier,
    DeliveryReceipt,
    DeliveryStatus,
    OutboundSms,
    SubmitResult,
)

UNDELIVERABLE = "0001"
REJECTED = "0002"
NO_RECEIPT = "0003"
TEMPORARY_FAILURE = "0004"


class SimulatorCarrier(BaseCarrier):
    carrier_name = "simulator"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Receipts wait here, per dispatching thread, until their submissions are recorded.
        self._pending = threading.local()

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        results: list[SubmitResult] = []
        receipts: list[DeliveryReceipt] = []
        failure_ratio = float(self.setting("FAILURE_RATIO", 0.0))
        now = timezone.now()
        for sms in batch:
            tail = sms.to[-4:]
            if tail == REJECTED:
                results.append(
                    SubmitResult.rejected(sms, "REJECTED", "Rejected by the carrier (simulated)")
                )
                continue
            if tail == TEMPORARY_FAILURE:
                results.append(
                    SubmitResult.rejected(
                        sms, "CARRIER_BUSY", "Carrier busy (simulated)", permanent=False
                    )
                )
                continue
            carrier_id = f"sim-{ULID()}"
            results.append(SubmitResult.ok(sms, carrier_id))
            if tail == NO_RECEIPT:
                continue
            failed = tail == UNDELIVERABLE or random.random() < failure_ratio
            receipts.append(
                DeliveryReceipt(
                    carrier=self.name,
                    carrier_message_id=carrier_id,
                    status=DeliveryStatus.UNDELIVERABLE if failed else DeliveryStatus.DELIVERED,
                    timestamp=now,
                    error_code="UNDELIVERABLE" if failed else None,
                    raw={"simulated": True, "to": sms.to},
                )
            )
        self._pending.receipts = [*getattr(self._pending, "receipts", []), *receipts]
        return results

    def after_recorded(self) -> None:
        receipts = getattr(self._pending, "receipts", [])
        self._pending.receipts = []
        if not receipts:
            return
        delay = float(self.setting("DELIVERY_DELAY", 1.0))
        if delay <= 0:
            self.emit_receipts(receipts)
            return
        # The receipts are handed over after the dispatcher has recorded the submission.
        timer = threading.Timer(delay, self.emit_receipts, args=(receipts,))
        timer.daemon = True
        timer.start()
