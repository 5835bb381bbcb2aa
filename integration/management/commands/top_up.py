from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integration.audit import AuditContext
from integration.management.commands._common import find_account, parse_amount
from integration.services import account_top_up


class Command(BaseCommand):
    help = "Add credit (TZS) to an account; writes a ledger row."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument("amount")
        parser.add_argument("--reference", default="")

    def handle(self, *args: Any, account: str, amount: str, reference: str, **options: Any) -> None:
        target = find_account(account)
        entry = account_top_up(
            account=target,
            amount=parse_amount(amount),
            reference=reference,
            note="top_up command",
            audit=AuditContext(operator=True, details={"via": "top_up command"}),
        )
        self.stdout.write(
            f"Topped up {target.name} by {entry.amount:.2f} {target.currency}; "
            f"balance {entry.balance_after:.2f} {target.currency}"
        )
