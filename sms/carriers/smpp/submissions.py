"""What a ``send_messages`` call puts on the wire, and how each piece is settled.

A ``Job`` is one recipient's message, encoded as one submit_sm ``Part`` per segment (split
and concatenated with a UDH or the sar_ TLVs, as CONCATENATION says); a ``Batch`` holds the
parts of one call still waiting for the wire, or waiting to be sent again after a refusal.
A job becomes its ``SubmitResult`` once every part is acknowledged or one has failed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sms.carriers.base import AcceptedListener, OutboundSms, SubmitResult
from sms.carriers.smpp.codec import (
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    MAX_PARTS,
    encode_pdu,
    source_address,
)
from sms.carriers.smpp.config import SmppConfig
from sms.encoding import GSM7, analyze, encode_gsm7, encode_ucs2, split_parts

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Part:
    """One submit_sm of one recipient's message, followed until it is settled."""

    job: Job
    pdu: bytes  # encoded with sequence 0; the session patches its own number in
    batch: Batch | None = None
    throttled: int = 0
    resubmits: int = 0
    sent_at: float = 0.0
    message_id: str | None = None  # as the SMSC wrote it
    receipt_key: str = ""  # the id normalised, as its receipts will be matched
    accepted_at: datetime | None = None
    error: tuple[str, str, bool] | None = None  # code, message, permanent


@dataclass(eq=False)
class Job:
    """One recipient: its parts and, once settled, its SubmitResult."""

    sms: OutboundSms
    parts: list[Part] = field(default_factory=list)
    error: tuple[str, str, bool] | None = None  # a problem found before sending

    def result(self) -> SubmitResult:
        failure = self.error or next((p.error for p in self.parts if p.error), None)
        if failure is None:
            acked = [p for p in self.parts if p.message_id]
            return SubmitResult.ok(
                self.sms,
                *(p.message_id for p in acked if p.message_id),
                receipt_keys=[p.receipt_key for p in acked],
                accepted_at=max((p.accepted_at for p in acked if p.accepted_at), default=None),
            )
        accepted = [p.message_id for p in self.parts if p.message_id]
        if accepted:
            logger.warning(
                "recipient %s: parts %s accepted but another part failed (%s)",
                self.sms.recipient_id,
                accepted,
                failure[0],
            )
        code, message, permanent = failure
        return SubmitResult.rejected(self.sms, code, message, permanent=permanent)


class Batch:
    """The parts of one ``send_messages`` call that still need the wire. Guarded by the
    carrier's lock."""

    def __init__(self, parts: Iterable[Part], listener: AcceptedListener | None = None) -> None:
        self.todo: deque[Part] = deque(parts)
        self.delayed: list[tuple[float, Part]] = []
        self.unsettled = len(self.todo)
        self.sent_any = False
        self.listener = listener
        self.accepted: list[Job] = []  # every part acknowledged, not handed to listener yet
        for part in self.todo:
            part.batch = self

    def settle(self) -> None:
        self.unsettled -= 1

    def retry_at(self, when: float, part: Part) -> None:
        self.delayed.append((when, part))

    def promote(self, now: float) -> float | None:
        """Move due retries to the queue; the time of the next one still waiting."""
        waiting = []
        for when, part in self.delayed:
            if when <= now:
                self.todo.append(part)
            else:
                waiting.append((when, part))
        self.delayed = waiting
        return min((when for when, _ in waiting), default=None)

    def abandon(self, code: str, message: str) -> None:
        """Settle every part not on the wire as a temporary rejection."""
        for part in [*self.todo, *(p for _, p in self.delayed)]:
            part.error = (code, message, False)
            self.unsettled -= 1
        self.todo.clear()
        self.delayed = []


def batch_of(part: Part) -> Batch:
    assert part.batch is not None, "a part on the wire always belongs to a batch"
    return part.batch


def build_job(sms: OutboundSms, config: SmppConfig, next_reference: Callable[[], int]) -> Job:
    """The submit_sm parts of one recipient's message; ``next_reference`` numbers the parts of
    a concatenated one."""
    job = Job(sms)
    info = analyze(sms.text)
    if info.segments > MAX_PARTS:
        job.error = ("SMPP_TOO_LONG", f"{info.segments} parts exceed {MAX_PARTS}", True)
        return job
    encode = encode_gsm7 if info.encoding == GSM7 else encode_ucs2
    data_coding = DATA_CODING_DEFAULT if info.encoding == GSM7 else DATA_CODING_UCS2
    bodies = [encode(text) for text in split_parts(sms.text)]
    fields = _address_fields(sms, config) | {"data_coding": data_coding}
    if len(bodies) == 1:
        job.parts.append(Part(job, encode_pdu("submit_sm", short_message=bodies[0], **fields)))
        return job
    reference = next_reference()
    for number, body in enumerate(bodies, start=1):
        part_fields = _concatenation(config, reference, len(bodies), number, body)
        job.parts.append(Part(job, encode_pdu("submit_sm", **(fields | part_fields))))
    return job


def _address_fields(sms: OutboundSms, config: SmppConfig) -> dict[str, Any]:
    source, ton, npi = source_address(sms.sender_id)
    return {
        "service_type": config.service_type,
        "source_addr_ton": ton if config.source_ton is None else config.source_ton,
        "source_addr_npi": npi if config.source_npi is None else config.source_npi,
        "source_addr": source,
        "dest_addr_ton": config.dest_ton,
        "dest_addr_npi": config.dest_npi,
        "destination_addr": sms.to.lstrip("+"),
        "esm_class": 0,
        "registered_delivery": config.registered_delivery,
    }


def _concatenation(
    config: SmppConfig, reference: int, total: int, number: int, body: bytes
) -> dict[str, Any]:
    if config.concatenation == "sar":
        return {
            "short_message": body,
            "sar_msg_ref_num": reference,
            "sar_total_segments": total,
            "sar_segment_seqnum": number,
        }
    # Concatenated-SM information element 0x00: 8-bit reference, part count, part number.
    header = bytes((0x05, 0x00, 0x03, reference & 0xFF, total, number))
    return {"short_message": header + body, "esm_class": ESM_CLASS_UDHI}
