from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inbox.services import NumberError, number_assign
from integration.management.commands._common import find_account


class Command(BaseCommand):
    help = (
        "Let an account receive on a number (E.164 long number or 3-8 digit short code); "
        "with --keyword, only the messages to a shared code whose first word is KW."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument("number")
        parser.add_argument("--keyword", default="", help="first word, for a shared code")

    def handle(self, *args: Any, account: str, number: str, keyword: str, **options: Any) -> None:
        target = find_account(account)
        try:
            assigned, created = number_assign(account=target, number=number, keyword=keyword)
        except NumberError as exc:
            raise CommandError(str(exc)) from None
        what = (
            f"{assigned.number} (keyword {assigned.keyword})"
            if assigned.keyword
            else assigned.number
        )
        if created:
            self.stdout.write(f"{target.name} now receives on {what}")
        else:
            self.stdout.write(f"{target.name} already receives on {what}")
