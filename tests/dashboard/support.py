"""What the dashboard tests share: the URL prefix, the test password, and how Chromium is
launched and signed in with Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.contrib.messages import get_messages
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
