"""Fixtures shared by the carrier test modules: the local SMSC, a recording receipt sink
and carriers bound to it; the local HTTP providers, each configured as a carrier."""

from tests.carriers.test_http_africastalking import at  # noqa: F401 - fixtures
from tests.carriers.test_http_beem import beem  # noqa: F401
from tests.carriers.test_http_twilio import twilio  # noqa: F401
from tests.carriers.test_smpp import make_carrier, sink, smsc  # noqa: F401
