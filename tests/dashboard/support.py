"""What the dashboard tests share: the URL prefix, the test password, how Chromium is
launched and signed in with Playwright, and the codes an authenticator app would show."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from django.contrib.messages import get_messages
from django_otp.oath import TOTP
from playwright.sync_api import Page, expect

PASSWORD = "kilimanjaro-2024"
DASH = "/api/integration/dashboard/"
# `python3 dev.py test` finds (or installs) one and names it in MIFUMO_CHROMIUM.
CHROMIUM = os.environ.get("MIFUMO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def dash(path: str = "") -> str:
    return f"{DASH}{path}"


def sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + dash("login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def downloaded(response: Any) -> str:
    """The text of a streamed download (a CSV export)."""
    return b"".join(response.streaming_content).decode()


def flashed(response: Any) -> list[str]:
    """The messages the request left for the next page."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def authenticator_code(key: bytes, *, at: float | None = None) -> str:
    """What an authenticator app shows for a two-factor key at ``at`` (now by default):
    RFC 6238, 30 s steps, 6 digits. django-otp accepts each step once and one step either
    side of its own clock, so a second code is the one 30 s after the first code's time,
    whichever step the clock has reached since."""
    totp = TOTP(key, step=30, t0=0, digits=6)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"
