"""The webhook tests' receiver and settings: inbound events go to a local receiver."""

from tests.webhooks.conftest import _webhook_settings, receiver  # noqa: F401 - fixtures
