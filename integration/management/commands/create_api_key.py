from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integration.audit import AuditContext
from integration.management.commands._common import find_account
from integration.models import ApiKey, Permission
from integration.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key; the raw key is printed alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument(
            "--permissions",
            default="read,write",
            help="comma-separated: read, write, admin (nested: admin includes write and read)",
        )
        parser.add_argument("--test", action="store_true", help="a mif_test_ key (simulator)")
        parser.add_argument("--name", default="Default key")

    def handle(
        self, *args: Any, account: str, permissions: str, test: bool, name: str, **options: Any
    ) -> None:
        target = find_account(account)
        wanted = {p.strip().lower() for p in permissions.split(",") if p.strip()}
        unknown = wanted - set(Permission.values)
        if unknown or not wanted:
            raise CommandError(
                f"Unknown permissions {sorted(unknown) or permissions!r}; use read, write, admin"
            )
        # Permissions are nested, so the highest one named is the key's level.
        level = next(
            p for p in (Permission.ADMIN, Permission.WRITE, Permission.READ) if p in wanted
        )
        name = name.strip() or "Default key"
        longest = ApiKey._meta.get_field("name").max_length
        if longest is not None and len(name) > longest:
            raise CommandError(f"A key's name is at most {longest} characters")
        issued = api_key_create(
            account=target,
            name=name,
            permission=level,
            test=test,
            audit=AuditContext(operator=True, details={"via": "create_api_key command"}),
        )
        key = issued.api_key
        self.stdout.write(
            f"Created {'test' if test else 'live'} key {key.name!r} for {target.name} "
            f"with permissions {','.join(key.permissions)}. It is shown once; store it now:"
        )
        self.stdout.write(issued.raw)
