"""The local SMSC, a recording receipt sink and carriers bound to the SMSC, for every SMPP
test module."""

from tests.carriers.test_smpp import make_carrier, sink, smsc  # noqa: F401 - fixtures
