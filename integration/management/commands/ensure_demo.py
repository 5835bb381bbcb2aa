"""Make sure the laptop demo account exists and print a working key for it.

The raw demo key is kept in a file under MIFUMO_VAR_DIR (never in the database) so that
running the server again prints the same key.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from rest_framework.exceptions import AuthenticationFailed

from integration.auth import authenticate_key
from integration.models import Account, Permission
from integration.services import account_create, api_key_create

DEMO_ACCOUNT = "Demo"
DEMO_BALANCE = Decimal("5000.00")


class Command(BaseCommand):
    help = "Create the demo account (5,000.00 TZS, sender ID MIFUMO) and print its API key."

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(name=DEMO_ACCOUNT).first()
        if account is None:
            account = account_create(name=DEMO_ACCOUNT, balance=DEMO_BALANCE)
        key_file = Path(settings.VAR_DIR) / "demo-api-key"
        raw = key_file.read_text().strip() if key_file.exists() else ""
        if not self._still_valid(raw, account):
            raw = api_key_create(account=account, name="Demo key", permission=Permission.ADMIN).raw
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(raw + "\n")
            key_file.chmod(0o600)
        self.stdout.write(
            f"Demo account {account.name!r}: balance {account.balance:.2f} {account.currency}, "
            f"sender ID {settings.MIFUMO_DEFAULT_SENDER_ID} approved. Demo API key (admin):"
        )
        self.stdout.write(raw)

    @staticmethod
    def _still_valid(raw: str, account: Account) -> bool:
        if not raw:
            return False
        try:
            return authenticate_key(raw).account_id == account.pk
        except AuthenticationFailed:
            return False
