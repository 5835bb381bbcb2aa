"""The send body's common case, validated without DRF's fields (``send_in_common``), gives what
``SendIn`` gives, and leaves every other body (and every refusal) to ``SendIn``."""

from __future__ import annotations

from typing import Any

import pytest

from sms.serializers import SendIn, send_in_common

PHONE = "+255712345678"

# Bodies the common path takes: its output must be SendIn's, field for field and in order.
TAKEN = [
    {"message": "Habari, your order is ready", "recipients": [PHONE]},
    {"message": "Habari", "recipients": [PHONE, "0712345679", "not a phone"]},
    {"message": "", "recipients": [PHONE]},
    {"message": "  spaced  ", "recipients": [PHONE]},
    {"message": "Karibu 🎉 ñ ü ₿", "recipients": [PHONE]},
    {"message": "x" * SendIn.MESSAGE_MAX_LENGTH, "recipients": [PHONE]},
    {"message": "Hello {{name}}", "recipients": []},
    {"message": "no recipients key"},
    {"message": "line\nbreak\ttab", "recipients": ["", " "]},
]

# Bodies it leaves to SendIn: valid ones with other fields, and everything SendIn refuses.
LEFT = [
    {"message": "x", "recipients": [PHONE], "sender_id": "MIFUMO"},
    {"message": "x", "recipients": [PHONE], "variables": {"a": "b"}},
    {"template_id": "tpl_1", "recipients": [PHONE]},
    {"recipients": [PHONE]},
    {},
    {"message": "x" * (SendIn.MESSAGE_MAX_LENGTH + 1), "recipients": [PHONE]},
    {"message": "nul \x00 inside", "recipients": [PHONE]},
    {"message": "lone \ud800 surrogate", "recipients": [PHONE]},
    {"message": 123, "recipients": [PHONE]},
    {"message": None, "recipients": [PHONE]},
    {"message": True, "recipients": [PHONE]},
    {"message": ["x"], "recipients": [PHONE]},
    {"message": "x", "recipients": PHONE},
    {"message": "x", "recipients": None},
    {"message": "x", "recipients": {"phone": PHONE}},
    {"message": "x", "recipients": [PHONE, None]},
    {"message": "x", "recipients": [255712345678]},
    {"message": "x", "recipients": [{"phone": PHONE}]},
    {"message": "x", "recipients": [PHONE], "unknown": 1},
    [PHONE],
    "message",
    None,
]


def _drf(body: Any) -> tuple[bool, Any]:
    serializer = SendIn(data=body)
    valid = serializer.is_valid()
    return valid, serializer.validated_data if valid else serializer.errors


@pytest.mark.parametrize("body", TAKEN, ids=range(len(TAKEN)))
def test_the_common_path_gives_what_sendin_gives(body: dict[str, Any]) -> None:
    common = send_in_common(body)
    assert common is not None
    valid, drf = _drf(body)
    assert valid, drf
    assert common == dict(drf)
    assert list(common) == list(drf)  # the same fields in the same order
    assert common["recipients"] is not body.get("recipients")  # a list of its own, as DRF's


@pytest.mark.parametrize("body", LEFT, ids=range(len(LEFT)))
def test_other_bodies_are_left_to_sendin(body: Any) -> None:
    assert send_in_common(body) is None


def test_what_sendin_refuses_the_common_path_never_takes() -> None:
    refused = [body for body in LEFT if not _drf(body)[0]]
    assert len(refused) >= 15  # the corpus keeps its refusals
    assert all(send_in_common(body) is None for body in refused)
