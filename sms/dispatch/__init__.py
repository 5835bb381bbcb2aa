"""Dispatch: claim queued recipients, route them, hand them to carriers, record what they said.

- ``claims``: the dispatch task's round (``message_dispatch``): claim queued recipients
  (``queued -> submitting``, ``SKIP LOCKED``) and deliver them.
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
from sms.dispatch.claims import claim, message_dispatch, recipient_texts
from sms.dispatch.failover import Item, deliver, deliver_here
from sms.dispatch.handoffs import (
    HEARTBEAT_SECONDS,
    carrier_process_alive,
    carrier_process_heartbeat,
    handoff,
    handoff_take,
)
from sms.dispatch.record import RETRY_SECONDS, DispatchReport, results_record
from sms.dispatch.sweeps import expire_unconfirmed, release_due_messages, stuck_messages

__all__ = [
    "HEARTBEAT_SECONDS",
    "RETRY_SECONDS",
    "DispatchReport",
    "Item",
    "carrier_process_alive",
    "carrier_process_heartbeat",
    "claim",
    "deliver",
    "deliver_here",
    "expire_unconfirmed",
    "handoff",
    "handoff_dispatch",
    "handoff_take",
    "message_dispatch",
    "recipient_texts",
    "release_due_messages",
    "results_record",
    "stuck_messages",
]
