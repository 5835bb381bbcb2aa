"""Turns recipient status changes into webhook events, inside the changing transaction."""

from __future__ import annotations

from typing import Any

from webhooks.services import event_record_status_change


def on_recipients_status_changed(
    sender: Any,
    *,
    message_id: str,
    account_id: int,
    status: str,
    recipient_ids: list[int],
    **kwargs: Any,
) -> None:
    event_record_status_change(
        message_id=message_id, account_id=account_id, status=status, recipient_ids=recipient_ids
    )
