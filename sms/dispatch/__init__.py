"""Dispatch: claim queued recipients, route them, hand them to carriers, record what they said.

- ``claims``: the dispatcher's rounds: claim queued recipients (``queued -> submitting``,
  ``SKIP LOCKED``) of any message (``queued_dispatch``) or of one (``message_dispatch``) and
  deliver them.
- ``wake``: the "dispatch pending" flag sends set to wake the dispatcher (``dispatch_wake``),
  and runs queued for when recipients in backoff are due (``dispatch_later``).
- ``failover``: offer claimed recipients to the carriers of their route in order
  (``deliver`` for workers, ``deliver_here`` for a carrier's own process).
- ``record``: record the carriers' results in one transaction per batch and signal the
  status changes.
- ``handoffs``: recipients left for a carrier that runs in a process of its own, and the
  heartbeat of that process; ``carrier_process``: one round of that process
  (``handoff_dispatch``, for ``run_smpp``).
- ``sweeps``: scheduled messages released, expired claims taken back, receipts that never
  came.
"""

from sms.dispatch.carrier_process import handoff_dispatch
from sms.dispatch.claims import (
    claim,
    claim_queued,
    message_dispatch,
    queued_dispatch,
    queued_items,
    recipient_texts,
)
from sms.dispatch.failover import Item, deliver, deliver_here
from sms.dispatch.handoffs import (
    HEARTBEAT_SECONDS,
    carrier_process_alive,
    carrier_process_heartbeat,
    handoff,
    handoff_take,
)
from sms.dispatch.record import RETRY_SECONDS, DispatchReport, results_record, retry_delay
from sms.dispatch.sweeps import expire_unconfirmed, release_due_messages, stuck_messages
from sms.dispatch.wake import dispatch_later, dispatch_wake, wake_clear, wake_pending

__all__ = [
    "HEARTBEAT_SECONDS",
    "RETRY_SECONDS",
    "DispatchReport",
    "Item",
    "carrier_process_alive",
    "carrier_process_heartbeat",
    "claim",
    "claim_queued",
    "deliver",
    "deliver_here",
    "dispatch_later",
    "dispatch_wake",
    "expire_unconfirmed",
    "handoff",
    "handoff_dispatch",
    "handoff_take",
    "message_dispatch",
    "queued_dispatch",
    "queued_items",
    "recipient_texts",
    "release_due_messages",
    "results_record",
    "retry_delay",
    "stuck_messages",
    "wake_clear",
    "wake_pending",
]
