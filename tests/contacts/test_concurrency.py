"""Concurrent writers against a real PostgreSQL: the unique constraint decides."""

import pytest

from contacts.models import Contact
from tests.contacts.threads import run_together
from tests.helpers import Api

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_creates_of_one_number_make_one_contact_and_conflicts(alice, alice_key):
    def create(i):
        response = Api(alice_key.raw).post(
            "contacts/create/", {"name": f"Racer {i}", "phone_number": "0712345678"}
        )
        return response.status_code, response.json()

    results = run_together(6, create)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 5
    winner = next(body["data"]["id"] for status, body in results if status == 201)
    for status, body in results:
        if status == 409:
            assert body["error_code"] == "CONFLICT"
            assert body["details"]["contact_id"] == winner
    assert Contact.objects.filter(account=alice).count() == 1


def test_concurrent_overlapping_imports_create_each_number_once(alice, alice_key):
    def import_rows(i):
        rows = "".join(f"P{n},+25571{n:07d}\n" for n in range(i * 300, i * 300 + 1_000))
        response = Api(alice_key.raw).client.post(
            "/api/integration/v1/contacts/import/",
            data=("name,phone_number\n" + rows).encode(),
            content_type="text/csv",
        )
        assert response.status_code == 200, response.content[:300]
        return response.json()["data"]

    results = run_together(3, import_rows)
    assert sum(r["created"] for r in results) == 1_600
    assert sum(r["created"] + r["skipped"] for r in results) == 3_000
    assert Contact.objects.filter(account=alice).count() == 1_600
