"""The first dashboard admin, made on the first start and left alone after that.

- DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_PASSWORD, DJANGO_SUPERUSER_EMAIL: a superuser,
  made with ``createsuperuser --noinput`` (which reads these variables) when missing;
- MIFUMO_FIRST_ACCOUNT, MIFUMO_FIRST_ACCOUNT_BALANCE: an account (``create_account``) that
  this user administers in the dashboard (``create_dashboard_user ... --role owner``).

An existing user keeps the password it has now, so changing it in the dashboard sticks. A new
one's password must pass the same checks as every password (length, not common, not like
the username) and not be the placeholder of .env.example: ``createsuperuser --noinput``
checks none of that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")


def _password_refusal(username: str, password: str) -> str | None:
    """Why the first admin may not have ``password``, or None."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    if password.startswith("change-me"):
        return "is still the placeholder of .env.example: choose a password of your own"
    user_model = get_user_model()
    try:
        validate_password(password, user_model(**{user_model.USERNAME_FIELD: username}))
    except ValidationError as exc:
        return "is refused: " + " ".join(exc.messages)
    return None


def main() -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from integration.models import Account, Membership

    username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
    if not username:
        sys.stdout.write("bootstrap: DJANGO_SUPERUSER_USERNAME is empty, no first admin to make\n")
        return 0
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        if not os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            sys.stderr.write(
                "bootstrap: set DJANGO_SUPERUSER_PASSWORD for the first admin "
                f"{username!r} (or clear DJANGO_SUPERUSER_USERNAME)\n"
            )
            return 1
        refusal = _password_refusal(username, os.environ["DJANGO_SUPERUSER_PASSWORD"])
        if refusal:
            sys.stderr.write(f"bootstrap: DJANGO_SUPERUSER_PASSWORD {refusal}\n")
            return 1
        os.environ.setdefault("DJANGO_SUPERUSER_EMAIL", "")
        call_command("createsuperuser", interactive=False, username=username)
        user = user_model._default_manager.get(**{user_model.USERNAME_FIELD: username})
    else:
        sys.stdout.write(f"bootstrap: user {username} exists\n")

    account_name = os.environ.get("MIFUMO_FIRST_ACCOUNT", "").strip()
    if not account_name:
        return 0
    account = Account.objects.filter(name=account_name).first()
    if account is None:
        balance = os.environ.get("MIFUMO_FIRST_ACCOUNT_BALANCE", "").strip() or "0"
        call_command("create_account", account_name, balance=balance)
        account = Account.objects.get(name=account_name)
    else:
        sys.stdout.write(f"bootstrap: account {account_name} exists\n")
    if Membership.objects.filter(user=user, account=account).exists():
        return 0
    # Without a password source the command keeps the user's password as it is.
    os.environ.pop("DASHBOARD_PASSWORD", None)
    call_command("create_dashboard_user", username, str(account.pk), role="owner")
    return 0


if __name__ == "__main__":
    sys.exit(main())
