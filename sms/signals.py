"""Signals the SMS app sends; receivers run inside the sender's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from django.dispatch import Signal


class StatusChange(NamedTuple):
    """Recipients of one message that moved together to one status."""

    message_id: str
    account_id: int
    status: str
    recipient_ids: list[int]


# Every status change of one batch (a receipts batch, a carrier submission's recording, an
# expiry sweep), sent once inside the transaction that made them, so an outbox row written
# by a receiver commits or rolls back with the change and a receiver can write the whole
# batch with a few statements.
# kwargs: changes: list[StatusChange] (sent, delivered or failed; one entry per message and
# status, never empty)
recipients_status_changed_batch = Signal()


def send_status_changes(sender: Any, changes: Sequence[StatusChange]) -> None:
    if changes:
        recipients_status_changed_batch.send(sender=sender, changes=list(changes))
