"""Carrier-reported opt-outs: failed recipients whose error says the phone opted out join
the account's opt-out list, inside the transaction that recorded the failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inbox.services import opt_out_reported_by_carriers
from sms.signals import StatusChange


def on_recipients_status_changed(
    sender: Any, *, changes: Sequence[StatusChange], **kwargs: Any
) -> None:
    opt_out_reported_by_carriers(changes=changes)
