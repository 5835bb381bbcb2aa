"""Create (or update) a dashboard user and their membership of an account.

The password comes from --password-from-env VAR, else an interactive prompt, else (stdin
not a terminal: a container or a script) the DASHBOARD_PASSWORD environment variable.
An existing user keeps their password unless one of these gives a new one.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from integration.audit import AuditContext
from integration.management.commands._common import find_account
from integration.members import membership_add
from integration.models import Membership

DEFAULT_ENV = "DASHBOARD_PASSWORD"


class Command(BaseCommand):
    help = "Create or update a dashboard user and give them a role in an account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("account", help="account name or id")
        parser.add_argument(
            "--role", choices=[r.value for r in Membership.Role], default=Membership.Role.OWNER
        )
        parser.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="read the password from this environment variable",
        )
        parser.add_argument("--email", default=None)

    def handle(
        self,
        *args: Any,
        username: str,
        account: str,
        role: str,
        password_from_env: str | None,
        email: str | None,
        **options: Any,
    ) -> None:
        username = username.strip()
        if not username:
            raise CommandError("The username must not be empty")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(f"{email!r} is not an email address") from None
        target = find_account(account)
        user_model = get_user_model()
        existing = user_model._default_manager.filter(
            **{user_model.USERNAME_FIELD: username}
        ).first()
        password = self._password(password_from_env, needed=existing is None)
        with transaction.atomic():
            user = existing or user_model(**{user_model.USERNAME_FIELD: username})
            if password is not None:
                try:
                    password_validation.validate_password(password, user)
                except ValidationError as exc:
                    raise CommandError("Password refused: " + " ".join(exc.messages)) from None
                user.set_password(password)
            if email is not None:
                user.email = email
            user.is_active = True
            user.save()
            membership_add(
                user=user,
                account=target,
                role=role,
                audit=AuditContext(
                    operator=True,
                    details={"new_user": existing is None, "by": "create_dashboard_user"},
                ),
            )
        verb = "Updated" if existing else "Created"
        self.stdout.write(
            f"{verb} user {user.get_username()} as {role} of {target.name}"
            + ("" if password is not None else " (password unchanged)")
        )

    def _password(self, env_var: str | None, *, needed: bool) -> str | None:
        if env_var:
            value = os.environ.get(env_var)
            if not value:
                raise CommandError(f"The environment variable {env_var} is not set or empty")
            return value
        if sys.stdin is not None and sys.stdin.isatty():
            first = getpass.getpass("Password: ")
            if not first and not needed:
                return None
            if first != getpass.getpass("Password (again): "):
                raise CommandError("The passwords do not match")
            if not first:
                raise CommandError("The password must not be empty")
            return first
        value = os.environ.get(DEFAULT_ENV)
        if value:
            return value
        if needed:
            raise CommandError(
                f"No password: stdin is not a terminal, so set {DEFAULT_ENV} "
                "or use --password-from-env VAR"
            )
        return None
