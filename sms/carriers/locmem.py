"""An in-memory carrier for tests: records every submission in ``outbox`` and can be told
to reject or fail."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

from sms.carriers.base import BaseCarrier, CarrierError, DeliveryReceipt, OutboundSms, SubmitResult

_ids = itertools.count(1)


class LocmemCarrier(BaseCarrier):
    carrier_name = "locmem"

    # Shared by every instance, like Django's locmem mail outbox.
    outbox: ClassVar[list[OutboundSms]] = []
    # Set by a test: raise this CarrierError for the next batch, or reject these numbers.
    fail_next: ClassVar[CarrierError | None] = None
    reject: ClassVar[dict[str, tuple[str, bool]]] = {}  # phone -> (error code, permanent)

    @classmethod
    def reset(cls) -> None:
        cls.outbox.clear()
        cls.fail_next = None
        cls.reject = {}

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        error, LocmemCarrier.fail_next = LocmemCarrier.fail_next, None
        if error is not None:
            raise error
        results = []
        for sms in batch:
            if sms.to in self.reject:
                code, permanent = self.reject[sms.to]
                results.append(SubmitResult.rejected(sms, code, "rejected", permanent=permanent))
                continue
            self.outbox.append(sms)
            results.append(SubmitResult.ok(sms, f"locmem-{next(_ids)}"))
        return results

    def deliver(self, receipts: Sequence[DeliveryReceipt]) -> None:
        """Hand receipts to the sink as a carrier would."""
        self.emit_receipts(receipts)
