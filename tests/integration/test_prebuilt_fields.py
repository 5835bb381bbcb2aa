"""Request serializers build their fields once per class (mifumo.api.serializers): each
instance still gets fields of its own, and validation says exactly what DRF's own field
copies say."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from contacts.serializers import ContactIn, ContactSearchIn
from mifumo.api.serializers import PrebuiltFieldsSerializer
from segments.serializers import SegmentIn
from sms.serializers import SendIn
from webhooks.serializers import EndpointCreateIn


def _as_drf_builds_them(cls: type[PrebuiltFieldsSerializer]) -> type[serializers.Serializer]:
    """The same serializer with DRF's field copying (a deep copy per instance)."""

    def get_fields(self: serializers.Serializer) -> dict[str, Any]:
        return serializers.Serializer.get_fields(self)

    return type(f"Drf{cls.__name__}", (cls,), {"get_fields": get_fields})


BODIES: list[tuple[type[PrebuiltFieldsSerializer], object]] = [
    (SendIn, {"message": "Habari", "recipients": ["+255712345678"]}),
    (SendIn, {"message": "Habari", "recipients": "+255712345678"}),
    (SendIn, {"message": 12, "recipients": [["+255712345678"]], "sender_id": "X" * 30}),
    (SendIn, {"message": "Habari", "template_id": "tpl_1"}),
    (SendIn, {"recipients": ["+255712345678"]}),
    (SendIn, {"message": "Hi {{a}}", "variables": {"a": 1, "b": [2]}, "segment_ids": [None]}),
    (SendIn, {"message": "Hi", "segment_ids": ["s" * 41, 3], "schedule_time": 5}),
    (SendIn, ["not", "an", "object"]),
    (SendIn, {"message": None, "webhook_url": "u" * 2001, "reply_to": 7}),
    (ContactIn, {"name": "", "phone_number": "0712345678", "tags": "x"}),
    (ContactIn, {"name": "Asha", "phone_number": "0712345678", "custom_fields": {"a": "b"}}),
    (ContactSearchIn, {"limit": "0", "offset": "-1"}),
    (ContactSearchIn, {"limit": "101", "q": "x" * 500}),
    (SegmentIn, {"name": "", "criteria": {"tags": "vip"}}),
    (SegmentIn, {"name": "Vip", "criteria": {"tags": ["vip"], "nonsense": 1}}),
    (EndpointCreateIn, {"url": 5, "events": "message.sent"}),
]


@pytest.mark.parametrize(("cls", "body"), BODIES)
def test_validation_matches_drfs_own_field_copies(
    cls: type[PrebuiltFieldsSerializer], body: object
) -> None:
    ours = cls(data=body)
    theirs = _as_drf_builds_them(cls)(data=body)
    assert ours.is_valid() == theirs.is_valid()
    assert ours.errors == theirs.errors
    if not ours.errors:
        assert ours.validated_data == theirs.validated_data


def test_each_instance_gets_fields_of_its_own_bound_to_it() -> None:
    first, second = SendIn(data={}), SendIn(data={})
    for name, field in first.fields.items():
        other = second.fields[name]
        assert field is not other
        assert field.parent is first and other.parent is second
        assert field.field_name == name == other.field_name
    # The child of a list field is copied too and answers to its own list.
    recipients, others = first.fields["recipients"], second.fields["recipients"]
    child, other_child = vars(recipients)["child"], vars(others)["child"]
    assert child is not other_child
    assert vars(child)["parent"] is recipients
    assert child.root is first


def test_an_instance_changing_its_fields_leaves_the_next_one_alone() -> None:
    first = SendIn(data={"message": "x"})
    first.fields["message"].required = True
    first.fields["message"].error_messages = {"required": "changed"}
    first.fields.pop("sender_id")
    second = SendIn(data={"recipients": ["+255712345678"], "template_id": "tpl_1"})
    assert second.fields["message"].required is False
    assert "sender_id" in second.fields
    assert second.is_valid(), second.errors


def test_a_subclass_builds_its_own_fields() -> None:
    class Wider(SendIn):
        extra = serializers.IntegerField(required=False)

    SendIn(data={})  # the parent's prototypes exist first
    assert "extra" in Wider(data={}).fields
    assert "extra" not in SendIn(data={}).fields
    wider = Wider(data={"message": "x", "recipients": [], "extra": "no"})
    assert not wider.is_valid()
    assert wider.errors == {"extra": ["A valid integer is required."]}
