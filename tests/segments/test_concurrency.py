"""Concurrent creates against a real PostgreSQL: the unique name constraint decides."""

import pytest

from segments.models import Segment
from tests.contacts.threads import run_together
from tests.helpers import Api

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_creates_of_one_name_make_one_segment(alice, alice_key):
    def create(i):
        name = "VIP" if i % 2 else "vip"
        return Api(alice_key.raw).post("contacts/segments/create/", {"name": name}).status_code

    assert sorted(run_together(4, create)) == [201, 409, 409, 409]
    assert Segment.objects.filter(account=alice).count() == 1
