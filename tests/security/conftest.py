"""Fixtures shared by the security tests."""

from tests.webhooks.conftest import receiver  # noqa: F401 - a fixture, used by name
