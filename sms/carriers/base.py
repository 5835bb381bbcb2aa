"""The carrier interface.

A carrier backend turns a batch of outbound SMS into one result per recipient and, later,
delivery receipts. Backends know nothing about the database: the dispatcher hands them
plain ``OutboundSms`` values and stores what comes back, and receipts are handed to a
``receipt_sink`` that the SMS app provides.

Subclasses set ``carrier_name`` and implement the hooks; ``send_messages`` is final. Every
carrier is held by ``registry``, which closes it at exit and has it forget its connections in
a forked child.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, final

from django.core.exceptions import ImproperlyConfigured

from sms.carriers import registry

logger = logging.getLogger(__name__)


class DeliveryStatus(enum.StrEnum):
    """The one closed vocabulary of delivery outcomes a carrier can report."""

    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    ENROUTE = "enroute"  # accepted downstream, not final yet
    UNKNOWN = "unknown"  # a state we could not map; never treated as delivered

    @property
    def is_final(self) -> bool:
        return self not in (DeliveryStatus.ENROUTE, DeliveryStatus.UNKNOWN)


@dataclass(frozen=True)
class OutboundSms:
    recipient_id: int  # the Recipient row this submission belongs to
    message_id: str  # msg_…
    to: str  # E.164, "+255712345678"
    sender_id: str
    text: str


@dataclass(frozen=True)
class SubmitResult:
    recipient_id: int
    accepted: bool
    # Every id the carrier gave us for this recipient (several for a multipart message).
    carrier_message_ids: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    # For rejections: a permanent one fails the recipient, a temporary one may be retried.
    permanent: bool = True
    # How this carrier's receipts name each id, when that differs from the id as given (an
    # SMPP carrier matches ids whatever their case or zero padding): receipts are matched on
    # these, the ids themselves are kept verbatim for people to search by.
    receipt_keys: tuple[str, ...] = ()
    # When the carrier acknowledged the (last part of the) message; None: when recorded.
    accepted_at: datetime | None = None

    @classmethod
    def ok(
        cls,
        sms: OutboundSms,
        *ids: str,
        receipt_keys: Sequence[str] = (),
        accepted_at: datetime | None = None,
    ) -> SubmitResult:
        return cls(
            recipient_id=sms.recipient_id,
            accepted=True,
            carrier_message_ids=tuple(ids),
            receipt_keys=tuple(receipt_keys),
            accepted_at=accepted_at,
        )

    @property
    def match_keys(self) -> tuple[str, ...]:
        """The ids receipts will carry, one per part."""
        return self.receipt_keys or self.carrier_message_ids

    @classmethod
    def rejected(
        cls, sms: OutboundSms, code: str, message: str, *, permanent: bool = True
    ) -> SubmitResult:
        return cls(
            recipient_id=sms.recipient_id,
            accepted=False,
            error_code=code,
            error_message=message,
            permanent=permanent,
        )


@dataclass(frozen=True)
class DeliveryReceipt:
    """One normalised delivery receipt, with the carrier's raw payload kept beside it."""

    carrier: str
    carrier_message_id: str
    status: DeliveryStatus
    timestamp: datetime
    error_code: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    # The carrier wrote the time to the minute only (an SMPP receipt's ``done date``): the
    # delivery is then dated no earlier than the submit was acknowledged.
    to_the_minute: bool = False


class CarrierError(Exception):
    """The whole batch could not be submitted (unreachable, timeout, 5xx, bind failure).

    ``permanent=False`` means trying again later (or on the next route) may succeed.
    """

    def __init__(self, message: str, *, permanent: bool = False, code: str = "CARRIER_ERROR"):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


ReceiptSink = Callable[[Sequence[DeliveryReceipt]], None]
# Called with recipients accepted in full while their batch is still on the wire.
AcceptedListener = Callable[[Sequence[SubmitResult]], None]


def normalise_options(options: Mapping[Any, Any]) -> dict[str, Any]:
    """A carrier's options keyed in upper case, whatever case they were written in."""
    return {str(key).upper(): value for key, value in options.items()}


def _drop_receipts(receipts: Sequence[DeliveryReceipt]) -> None:
    logger.warning("no receipt sink configured; dropped %d receipts", len(receipts))


class BaseCarrier:
    """Template for carrier backends (see the module docstring)."""

    carrier_name: ClassVar[str]
    # Submits from a process of its own (``manage.py run_smpp``) rather than from the Celery
    # workers, unless the carrier's DEDICATED_PROCESS option says otherwise.
    runs_in_own_process: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        receipt_sink: ReceiptSink | None = None,
    ) -> None:
        if not getattr(self, "carrier_name", None):
            raise ImproperlyConfigured(f"{type(self).__name__} must set carrier_name")
        self.name = name or self.carrier_name
        self.options: Mapping[str, Any] = normalise_options(options or {})
        self.receipt_sink: ReceiptSink = receipt_sink or _drop_receipts
        registry.hold(self)

    # -- configuration -------------------------------------------------------------------
    def setting(self, key: str, default: Any = ...) -> Any:
        """Read one option of this carrier; a missing required one names the exact setting."""
        if key in self.options and self.options[key] not in (None, ""):
            return self.options[key]
        if default is ...:
            raise ImproperlyConfigured(
                f"MIFUMO_CARRIERS[{self.name!r}][{key.upper()!r}] is required by the "
                f"{self.carrier_name} carrier"
            )
        return default

    @property
    def paces_itself(self) -> bool:
        """True when the carrier spaces its submits at its RATE by itself, so callers need not
        hold batches back under ``sms.throttle``."""
        return False

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        """Open connections; called before the first batch. Idempotent."""

    def close(self) -> None:
        """Release connections. Idempotent."""

    def forget_after_fork(self) -> None:
        """In a forked child: drop the connections inherited from the parent without closing
        them (closing would end the parent's sessions); the next use opens new ones."""

    def __enter__(self) -> BaseCarrier:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------
    @final
    def send_messages(
        self, batch: Sequence[OutboundSms], *, on_accepted: AcceptedListener | None = None
    ) -> list[SubmitResult]:
        """Submit a batch; one result per input, in input order.

        ``on_accepted``: a carrier that learns results one by one (SMPP) hands it the
        recipients accepted so far, in small groups on the caller's thread, before the batch
        ends, so they can be recorded at once; they are in the returned list all the same.
        Raises ``CarrierError`` when the batch as a whole could not be handed over.
        """
        if not batch:
            return []
        self.open()
        payload = self.build_payload(batch)
        if on_accepted is None:
            response = self.post_to_carrier(payload, batch)
        else:
            response = self.post_streaming(payload, batch, on_accepted)
        results = self.parse_recipient_status(response, batch)
        by_id = {r.recipient_id: r for r in results}
        missing = [s for s in batch if s.recipient_id not in by_id]
        if missing:
            logger.error("%s returned no result for %d recipients", self.name, len(missing))
            for sms in missing:
                by_id[sms.recipient_id] = SubmitResult.rejected(
                    sms, "NO_CARRIER_RESULT", "carrier gave no result", permanent=False
                )
        return [by_id[s.recipient_id] for s in batch]

    def build_payload(self, batch: Sequence[OutboundSms]) -> Any:
        return batch

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement post_to_carrier")

    def post_streaming(
        self, payload: Any, batch: Sequence[OutboundSms], on_accepted: AcceptedListener
    ) -> Any:
        """``post_to_carrier`` that may report accepted recipients early; by default it does
        not (everything is recorded when the batch returns)."""
        return self.post_to_carrier(payload, batch)

    def parse_recipient_status(
        self, response: Any, batch: Sequence[OutboundSms]
    ) -> list[SubmitResult]:
        """One result per recipient from what ``post_to_carrier`` returned; by default that
        already is the list of results."""
        results: list[SubmitResult] = response
        return results

    def after_recorded(self) -> None:
        """Called by the dispatcher once the results of the last batch are stored; a carrier
        that produces receipts itself (the simulator) releases them here, so a receipt can
        never arrive before the submission it answers is on record."""

    def emit_receipts(self, receipts: Sequence[DeliveryReceipt]) -> None:
        if receipts:
            self.receipt_sink(receipts)
