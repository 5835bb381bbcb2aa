"""Contacts and segments against a real server: every method, offset pagination across pages,
CSV import (compressed or not, from a path, bytes or a file, with row errors) and export."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from mifumo_client import ConflictError, Mifumo, NotFoundError
from mifumo_client.models import Contact, ImportResult, Segment

from contacts.models import Contact as ContactRow
from integration.models import Account

pytestmark = pytest.mark.slow


def test_a_contact_is_created_read_changed_opted_out_and_in_and_deleted(client: Mifumo) -> None:
    made = client.contacts.create(
        "Juma Hamisi", "0712 345 675", email="juma@example.com", tags=["VIP", "dar"]
    )
    assert isinstance(made, Contact) and made.id.startswith("con_")
    assert (made.phone_number, made.tags, made.is_active) == ("+255712345675", ["vip", "dar"], True)
    assert made.created_at.tzinfo is not None and made.opted_out_at is None

    assert client.contacts.get(made.id) == made
    changed = client.contacts.update(made.id, name="Juma H.", is_active=False)
    assert (changed.name, changed.is_active, changed.email) == (
        "Juma H.",
        False,
        "juma@example.com",
    )
    assert client.contacts.update(made.id, email=None).email is None

    out = client.contacts.opt_out(made.id)
    assert out.opted_out is True and out.opted_out_at is not None
    assert client.contacts.opt_in(made.id).opted_out is False

    gone = client.contacts.delete(made.id)
    assert (gone.id, gone.deleted) == (made.id, True)
    with pytest.raises(NotFoundError):
        client.contacts.get(made.id)


def test_search_walks_every_page_with_limit_and_offset(client: Mifumo) -> None:
    made = [client.contacts.create(f"Mteja {n}", f"+25571234{n:03d}5") for n in range(5)]
    client.contacts.create("Mwingine", "+255754000005")

    pages = list(client.contacts.search("mteja", page_size=2).pages())
    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert {page.total for page in pages} == {5}
    found = list(client.contacts.search("mteja", page_size=2))
    assert [c.id for c in found] == [c.id for c in reversed(made)]
    assert len(list(client.contacts.search())) == 6
    assert [c.name for c in client.contacts.search("0754000005")] == ["Mwingine"]
    assert list(client.contacts.search("hakuna")) == []


def test_segments_are_made_listed_read_changed_and_deleted(client: Mifumo) -> None:
    vip = [client.contacts.create(f"VIP {n}", f"+25571234{n:03d}5", tags=["vip"]) for n in range(3)]
    client.contacts.create("Kawaida", "+255754000005")

    segment = client.segments.create("VIPs", criteria={"tags": ["vip"]}, description="Wakubwa")
    assert isinstance(segment, Segment) and segment.id.startswith("seg_")
    assert (segment.contact_count, segment.criteria) == (3, {"tags": ["vip"]})
    members = list(client.segments.contacts(segment.id, page_size=2))
    assert sorted(c.id for c in members) == sorted(c.id for c in vip)
    assert [c.name for c in client.contacts.search(segment_id=segment.id, page_size=1)] == [
        "VIP 2",
        "VIP 1",
        "VIP 0",
    ]

    others = [client.segments.create(f"Kundi {n}") for n in range(2)]
    pages = list(client.segments.list(page_size=2).pages())
    assert [len(page.items) for page in pages] == [2, 1]
    listed = {s.id: s.contact_count for s in client.segments.list(page_size=2)}
    assert listed == {segment.id: 3, others[0].id: 4, others[1].id: 4}

    changed = client.segments.update(segment.id, name="Wakubwa", criteria={"tags": ["none"]})
    assert (changed.name, changed.contact_count, changed.description) == ("Wakubwa", 0, "Wakubwa")
    assert client.segments.get(segment.id) == changed
    assert client.segments.delete(segment.id).deleted is True
    with pytest.raises(NotFoundError):
        client.segments.get(segment.id)


CSV = (
    "name,phone_number,email,tags,is_active,Shoe size (EU)\n"
    "Amina,0712000015,amina@example.com,vip;dar,true,40\n"
    "Baraka,not-a-phone,,,,\n"
    "Chausiku,0754000025,bad-email,,maybe,\n"
    "Amina again,+255712000015,,,,\n"
    "Daudi,0765000035,,,false,\n"
)


def test_an_import_reports_each_bad_row_and_imports_the_rest(
    client: Mifumo, account: Account
) -> None:
    progress: list[tuple[int, int]] = []
    result = client.contacts.import_csv(CSV.encode(), progress=lambda *p: progress.append(p))

    assert isinstance(result, ImportResult)
    assert (result.created, result.updated, result.skipped, result.failed) == (2, 0, 0, 3)
    # A column that cannot name a custom field is left out and reported.
    assert result.ignored_columns == ["Shoe size (EU)"]
    assert [(e.row, e.field) for e in result.errors] == [
        (3, "phone_number"),
        (4, "email"),
        (4, "is_active"),
        (5, "phone_number"),
    ]
    assert "duplicate of row 2" in result.errors[-1].reason
    assert (result.opted_out, result.opted_in, result.left_opted_out) == (0, 0, 0)
    assert progress[0][0] == 0 and progress[-1][0] == progress[-1][1] > 0
    rows = ContactRow.objects.filter(account=account).order_by("phone_number")
    assert [(c.name, c.phone_number, c.is_active) for c in rows] == [
        ("Amina", "+255712000015", True),
        ("Daudi", "+255765000035", False),
    ]


def test_an_import_reads_a_path_a_file_or_gzip_and_can_update(
    client: Mifumo, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("name,phone_number\nAmina,0712000015\n")
    assert client.contacts.import_csv(path, compress=False).created == 1
    again = io.BytesIO(b"name,phone_number\nAmina Juma,0712000015\n")
    assert client.contacts.import_csv(again).skipped == 1
    packed = gzip.compress(b"name,phone_number,tags\nAmina J.,0712000015,vip\n")
    updated = client.contacts.import_csv(packed, on_duplicate="update")
    assert (updated.created, updated.updated) == (0, 1)
    (amina,) = client.contacts.search("0712000015")
    assert (amina.name, amina.tags) == ("Amina J.", ["vip"])


def test_the_export_is_the_import_format_whole_or_of_a_segment(client: Mifumo) -> None:
    client.contacts.create("Amina", "+255712000015", tags=["vip", "dar"])
    client.contacts.create("Baraka", "+255754000025", email="b@example.com", is_active=False)
    segment = client.segments.create("VIP", criteria={"tags": ["vip"]})

    assert client.contacts.export_csv().splitlines() == [
        "name,phone_number,email,tags,is_active,opted_out",
        "Amina,+255712000015,,vip;dar,true,false",
        "Baraka,+255754000025,b@example.com,,false,false",
    ]
    assert client.contacts.export_csv(segment_id=segment.id).splitlines()[1:] == [
        "Amina,+255712000015,,vip;dar,true,false"
    ]
    with pytest.raises(NotFoundError):
        client.contacts.export_csv(segment_id="seg_missing")


def test_a_duplicate_phone_is_a_conflict(client: Mifumo) -> None:
    client.contacts.create("Amina", "0712000015")
    with pytest.raises(ConflictError) as caught:
        client.contacts.create("Amina tena", "+255712000015")
    assert caught.value.status == 409 and "+255712000015" in caught.value.message


def test_an_import_reports_its_opt_outs(client: Mifumo) -> None:
    amina = client.contacts.create("Amina", "+255712000015")
    client.contacts.opt_out(amina.id)
    result = client.contacts.import_csv(
        b"name,phone_number,opted_out\nAmina,0712000015,hapana\nBaraka,0754000025,ndiyo\n"
    )
    assert (result.created, result.skipped) == (1, 1)
    assert (result.opted_out, result.opted_in, result.left_opted_out) == (1, 0, 1)
