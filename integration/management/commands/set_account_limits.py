from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integration.audit import AuditContext
from integration.management.commands._common import find_account
from integration.services import account_set_limits

FIELDS = {
    "sms_per_minute": "sms_per_minute",
    "api_per_hour": "api_per_hour",
    "contacts_per_hour": "contacts_per_hour",
    "max_message_length": "max_message_length",
}


class Command(BaseCommand):
    help = "Override an account's rate limits and message length limit (0 restores the default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument("--sms-per-minute", type=int, dest="sms_per_minute")
        parser.add_argument("--api-per-hour", type=int, dest="api_per_hour")
        parser.add_argument("--contacts-per-hour", type=int, dest="contacts_per_hour")
        parser.add_argument("--max-message-length", type=int, dest="max_message_length")

    def handle(self, *args: Any, account: str, **options: Any) -> None:
        target = find_account(account)
        limits: dict[str, int | None] = {}
        for option, field in FIELDS.items():
            value = options.get(option)
            if value is None:
                continue
            if value < 0:
                raise CommandError(f"--{option.replace('_', '-')} must not be negative")
            limits[field] = value or None
        if not limits:
            raise CommandError("Give at least one limit to set")
        account_set_limits(
            account=target,
            limits=limits,
            audit=AuditContext(operator=True, details={"via": "set_account_limits command"}),
        )
        changed = list(limits)
        shown = ", ".join(f"{f}={getattr(target, f) or 'default'}" for f in changed)
        self.stdout.write(f"Limits for {target.name}: {shown}")
