"""Turns recipient status changes into webhook events, inside the changing transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sms.signals import StatusChange
from webhooks.services import event_record_status_changes


def on_recipients_status_changed(
    sender: Any, *, changes: Sequence[StatusChange], **kwargs: Any
) -> None:
    event_record_status_changes(changes=changes)
