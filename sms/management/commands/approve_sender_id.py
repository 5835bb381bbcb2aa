from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.audit import Action, audit_record
from integration.management.commands._common import find_account
from sms.sender_ids import sender_id_format_error, sender_id_review


class Command(BaseCommand):
    help = "Approve a sender ID for an account (creating the request if there is none)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument("sender")
        parser.add_argument("--reject", action="store_true", help="reject instead")

    def handle(self, *args: Any, account: str, sender: str, reject: bool, **options: Any) -> None:
        target = find_account(account)
        value = sender.strip()
        problem = sender_id_format_error(value)
        if problem:
            raise CommandError(f"{value!r}: {problem}")
        sender_id = sender_id_review(account=target, value=value, approve=not reject)
        audit_record(
            account=target,
            actor=None,
            action=Action.SENDER_ID_REJECTED if reject else Action.SENDER_ID_APPROVED,
            target=sender_id.value,
            details={"via": "approve_sender_id command"},
        )
        self.stdout.write(f"Sender ID {sender_id.value} is {sender_id.status} for {target.name}")
