from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integration.management.commands._common import parse_amount
from integration.models import Account
from integration.services import account_create


class Command(BaseCommand):
    help = "Create an account with an optional opening balance (TZS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--balance", default="0")

    def handle(self, *args: Any, name: str, balance: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("The account name must not be empty")
        if len(name) > 120:
            raise CommandError("The account name is longer than 120 characters")
        if name.isdigit():
            raise CommandError("The account name must not be only digits (ids are numbers)")
        if Account.objects.filter(name=name).exists():
            raise CommandError(f"An account named {name!r} already exists")
        amount = parse_amount(balance, allow_zero=True)
        account = account_create(name=name, balance=amount)
        self.stdout.write(
            f"Created account {account.name} (id {account.pk}), "
            f"balance {account.balance:.2f} {account.currency}"
        )
