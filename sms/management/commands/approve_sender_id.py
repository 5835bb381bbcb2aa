from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integration.audit import AuditContext
from integration.management.commands._common import find_account
from sms.sender_ids import MAX_NOTE_LENGTH, sender_id_format_error, sender_id_review


class Command(BaseCommand):
    help = "Approve a sender ID for an account (creating the request if there is none)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument("sender")
        parser.add_argument("--reject", action="store_true", help="reject instead")
        parser.add_argument(
            "--reason",
            default="",
            help="why (required with --reject); the account sees it beside the sender ID",
        )

    def handle(
        self, *args: Any, account: str, sender: str, reject: bool, reason: str, **options: Any
    ) -> None:
        target = find_account(account)
        value = sender.strip()
        problem = sender_id_format_error(value)
        if problem:
            raise CommandError(f"{value!r}: {problem}")
        reason = reason.strip()
        if reject and not reason:
            raise CommandError("Give --reason when rejecting: the account is shown why")
        if len(reason) > MAX_NOTE_LENGTH:
            raise CommandError(f"--reason is longer than {MAX_NOTE_LENGTH} characters")
        sender_id = sender_id_review(
            account=target,
            value=value,
            approve=not reject,
            note=reason,
            audit=AuditContext(operator=True, details={"via": "approve_sender_id command"}),
        )
        self.stdout.write(f"Sender ID {sender_id.value} is {sender_id.status} for {target.name}")
