"""Fixtures for the dashboard: users with a role in an account, signed-in test clients,
and a headless Chromium (one per module) with pages that are kept as screenshots on failure."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser, Page, sync_playwright

from integration.members import membership_add
from integration.models import Account
from tests.dashboard.support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make next to it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def make_user(db: None) -> Any:
    def make(username: str, account: Account | None = None, role: str = "owner") -> Any:
        user = get_user_model().objects.create_user(username=username, password=PASSWORD)
        if account is not None:
            membership_add(user=user, account=account, role=role)
        return user

    return make


@pytest.fixture
def owner(alice: Account, make_user: Any) -> Any:
    return make_user("asha", alice, "owner")


@pytest.fixture
def member(alice: Account, make_user: Any) -> Any:
    return make_user("baraka", alice, "member")


@pytest.fixture
def owner_client(owner: Any) -> Client:
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def member_client(member: Any) -> Client:
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def csrf_client(owner: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    return client


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Lets the browser fixtures see whether the test body failed, to keep a screenshot.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `python3 dev.py test` finds or installs Chromium",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


def _screenshot_name(request: pytest.FixtureRequest, label: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::")[-1])
    return ARTIFACTS / f"{name}{label}.png"


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (its own cookies); every page
    of a failed test is saved to test-artifacts/."""
    contexts = []
    pages: list[Page] = []
    refused: list[str] = []

    def make(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        # Anything the page's Content-Security-Policy refuses is reported on the console.
        page.on(
            "console",
            lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text
            else None,
        )
        pages.append(page)
        return page

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(pages):
            # A page that died with the test must not hide the test's own failure.
            with contextlib.suppress(Exception):
                page.screenshot(path=str(_screenshot_name(request, f"-{index}")), full_page=True)
    for context in contexts:
        context.close()
    if refused:
        pytest.fail("the Content-Security-Policy refused:\n" + "\n".join(refused), pytrace=False)
