"""The webhook tests' local receiver and settings: the import's opt-out events go to it."""

from tests.webhooks.conftest import _webhook_settings, receiver  # noqa: F401 - fixtures
