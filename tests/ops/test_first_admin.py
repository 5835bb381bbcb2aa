"""The migrate service: migrations, then the first dashboard admin from the environment,
and nothing more on the next start."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests.ops.stack import ROOT, Stack

WHO = """
import json
from django.contrib.auth import authenticate, get_user_model
from integration.models import Account, Membership
user = get_user_model().objects.get(username="admin")
print(json.dumps({
    "superuser": user.is_superuser,
    "email": user.email,
    "old_password": authenticate(username="admin", password="first-Password-1") is not None,
    "new_password": authenticate(username="admin", password="second-Password-2") is not None,
    "accounts": list(Account.objects.values_list("name", "balance")),
    "roles": list(Membership.objects.filter(user=user).values_list("account__name", "role")),
}, default=str))
"""


@pytest.mark.slow
def test_migrate_makes_the_first_admin_once_and_keeps_its_password(
    tmp_path: Path, fresh_database: str, clean_broker: str
):
    stack = Stack(
        overrides={
            "DATABASE_URL": fresh_database,
            "REDIS_URL": clean_broker,
            "MIFUMO_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "DJANGO_SUPERUSER_PASSWORD": "first-Password-1",
            "MIFUMO_FIRST_ACCOUNT_BALANCE": "250",
        }
    )
    first = stack.run("migrate", tmp_path)
    assert "Superuser created successfully" in first
    assert "Created account My Company" in first
    assert "Updated user admin as owner of My Company (password unchanged)" in first
    # The next start: the password in the environment changed, the admin's stays.
    second = stack.run("migrate", tmp_path, DJANGO_SUPERUSER_PASSWORD="second-Password-2")
    assert "No migrations to apply" in second
    assert "user admin exists" in second and "account My Company exists" in second
    result = subprocess.run(
        ["sh", stack.command("web")[0], "python", "manage.py", "shell", "-c", WHO],
        cwd=ROOT,
        env=stack.environment("web"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    who = json.loads(result.stdout.strip().splitlines()[-1])
    assert who["superuser"] is True and who["email"] == "admin@example.com"
    assert who["old_password"] is True and who["new_password"] is False
    assert who["accounts"] == [["My Company", "250.00"]]
    assert who["roles"] == [["My Company", "owner"]]


@pytest.mark.slow
def test_migrate_refuses_an_admin_without_a_password(
    tmp_path: Path, fresh_database: str, clean_broker: str
):
    stack = Stack(
        overrides={
            "DATABASE_URL": fresh_database,
            "REDIS_URL": clean_broker,
            "MIFUMO_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "DJANGO_SUPERUSER_PASSWORD": "",
        }
    )
    process = stack.start("migrate", tmp_path)
    try:
        assert process.popen.wait(180) == 1
    finally:
        process.kill()
    assert "set DJANGO_SUPERUSER_PASSWORD" in process.log_path.read_text()


def _bootstrap() -> Any:
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "docker" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("change-me-too", "placeholder of .env.example"),
        ("123", "too short"),
        ("password123", "too common"),
    ],
)
def test_the_first_admin_needs_a_password_worth_the_name(
    monkeypatch: Any, capsys: Any, password: str, why: str
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    monkeypatch.delenv("MIFUMO_FIRST_ACCOUNT", raising=False)
    assert _bootstrap().main() == 1
    assert why in capsys.readouterr().err
    assert not get_user_model().objects.filter(username="admin").exists()
