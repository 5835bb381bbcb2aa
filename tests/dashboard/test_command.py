"""create_dashboard_user: the first admin of an account, from a shell or a container."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from integration.models import Account, AuditEvent, Membership

pytestmark = pytest.mark.django_db


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(*args: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    monkeypatch.setattr("sys.stdin", Pipe())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    call_command("create_dashboard_user", *args, stdout=out)
    return out.getvalue()


def test_creates_a_user_and_an_owner_membership(
    alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = run(
        "zuhura",
        "alice",
        "--password-from-env",
        "ZUHURA_PASS",
        "--email",
        "zuhura@example.com",
        monkeypatch=monkeypatch,
        ZUHURA_PASS="ngorongoro-crater-9",
    )
    assert "Created user zuhura as owner of alice" in output
    user = get_user_model().objects.get(username="zuhura")
    assert user.check_password("ngorongoro-crater-9") and user.email == "zuhura@example.com"
    assert Membership.objects.get(user=user).role == "owner"
    assert AuditEvent.objects.get(action="membership.changed").details["role"] == "owner"


def test_without_a_terminal_it_reads_dashboard_password(
    alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("zuhura", str(alice.pk), monkeypatch=monkeypatch, DASHBOARD_PASSWORD="pemba-island-42")
    assert get_user_model().objects.get(username="zuhura").check_password("pemba-island-42")


def test_running_again_updates_the_role_and_keeps_the_password(
    alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("zuhura", "alice", monkeypatch=monkeypatch, DASHBOARD_PASSWORD="pemba-island-42")
    monkeypatch.delenv("DASHBOARD_PASSWORD")
    output = run("zuhura", "alice", "--role", "member", monkeypatch=monkeypatch)
    assert "Updated user zuhura as member of alice (password unchanged)" in output
    run("zuhura", "bob", "--role", "admin", monkeypatch=monkeypatch)
    user = get_user_model().objects.get(username="zuhura")
    assert user.check_password("pemba-island-42")
    roles = dict(Membership.objects.filter(user=user).values_list("account__name", "role"))
    assert roles == {"alice": "member", "bob": "admin"}


@pytest.mark.parametrize(
    ("args", "env", "error"),
    [
        (["zuhura", "nobody"], {"DASHBOARD_PASSWORD": "pemba-island-42"}, "No account named"),
        (["zuhura", "alice"], {}, "set DASHBOARD_PASSWORD"),
        (["zuhura", "alice", "--password-from-env", "MISSING_VAR"], {}, "MISSING_VAR is not set"),
        (["zuhura", "alice"], {"DASHBOARD_PASSWORD": "123"}, "Password refused"),
        (["zuhura", "alice", "--email", "not-an-email"], {}, "is not an email address"),
    ],
)
def test_clear_errors(
    alice: Account, monkeypatch: pytest.MonkeyPatch, args: list[str], env: Any, error: str
) -> None:
    monkeypatch.delenv("DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("MISSING_VAR", raising=False)
    with pytest.raises(CommandError, match=error):
        run(*args, monkeypatch=monkeypatch, **env)
    assert not get_user_model().objects.filter(username="zuhura").exists()


def test_the_role_must_be_known(alice: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        run("zuhura", "alice", "--role", "king", monkeypatch=monkeypatch)


def test_at_a_terminal_it_prompts_twice(alice: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["mafia-island-31", "mafia-island-31"])
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    call_command("create_dashboard_user", "zuhura", "alice", stdout=io.StringIO())
    assert get_user_model().objects.get(username="zuhura").check_password("mafia-island-31")

    mismatch = iter(["one-password-1", "another-password-2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(mismatch))
    with pytest.raises(CommandError, match="do not match"):
        call_command("create_dashboard_user", "zuhura", "alice", stdout=io.StringIO())
