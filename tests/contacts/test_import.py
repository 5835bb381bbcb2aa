import gzip

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.models import Contact
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

URL = "/api/integration/v1/contacts/import/"
HEADER = "name,phone_number,email,tags,is_active\n"


def upload(api, content, name="contacts.csv", **fields):
    data = content if isinstance(content, bytes) else content.encode()
    file = SimpleUploadedFile(name, data, content_type="text/csv")
    return api.client.post(URL, {"file": file, **fields}, format="multipart")


def post_csv(api, content, query=""):
    data = content if isinstance(content, bytes) else content.encode()
    return api.client.post(URL + query, data=data, content_type="text/csv")


def result(response):
    return assert_envelope(response, 200)["data"]


def test_a_multipart_upload_creates_the_contacts(api, alice):
    csv = HEADER + (
        "John Doe,0712345678,john@example.com,customer;VIP,true\n"
        "Asha,+255 754 111 222,,lead|customer,false\n"
        "Juma,688000999,,,\n"
    )
    body = assert_envelope(upload(api, csv), 200)
    assert body["data"] == {
        "created": 3,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
        "errors": [],
        "errors_truncated": False,
        "ignored_columns": [],
        "opted_out": 0,
        "opted_in": 0,
        "left_opted_out": 0,
    }
    assert body["message"] == "Import finished: 3 created, 0 updated, 0 skipped, 0 failed"
    john = Contact.objects.get(account=alice, phone_number="+255712345678")
    assert (john.name, john.email, john.tags, john.is_active) == (
        "John Doe",
        "john@example.com",
        ["customer", "vip"],
        True,
    )
    asha = Contact.objects.get(account=alice, phone_number="+255754111222")
    assert (asha.email, asha.tags, asha.is_active) == ("", ["lead", "customer"], False)
    juma = Contact.objects.get(account=alice, phone_number="+255688000999")
    assert (juma.tags, juma.is_active) == ([], True)


def test_a_raw_text_csv_body_is_accepted(api, alice):
    data = result(post_csv(api, HEADER + "John,0712345678,,,\n"))
    assert data["created"] == 1
    assert Contact.objects.filter(account=alice).count() == 1


def test_a_gzip_compressed_file_is_accepted(api):
    rows = "".join(f"Person {n},+25571{n:07d},,,\n" for n in range(200))
    packed = gzip.compress((HEADER + rows).encode())
    assert result(upload(api, packed, name="contacts.csv.gz"))["created"] == 200
    assert Contact.objects.count() == 200


def test_a_broken_gzip_file_is_a_validation_error(api):
    body = assert_envelope(upload(api, b"\x1f\x8bnot really gzip"), 400, "VALIDATION_ERROR")
    assert "file" in body["details"]


def test_header_names_are_case_insensitive_and_a_byte_order_mark_is_ignored(api):
    csv = "\ufeffName , PHONE_NUMBER,Tags\nJohn,0712345678,A;b\n"
    assert result(upload(api, csv))["created"] == 1
    assert Contact.objects.get().tags == ["a", "b"]


def test_columns_that_cannot_be_custom_fields_are_ignored_and_reported(api):
    data = result(upload(api, "name,phone_number,1st visit,phone\nJohn,0712345678,May,x\n"))
    assert data["created"] == 1
    assert data["ignored_columns"] == ["1st visit", "phone"]
    assert Contact.objects.get().custom_fields == {}


def test_other_columns_become_custom_fields(api):
    csv = (
        "name,phone_number,City,Order ID,note\n"
        "John,0712345678,Arusha,1043,\n"
        "Asha,0754111222,  Moshi ,,hi\n"
    )
    data = result(upload(api, csv))
    assert data["created"] == 2
    assert data["ignored_columns"] == []
    fields = dict(Contact.objects.values_list("name", "custom_fields"))
    # An empty cell leaves the field out; values are trimmed.
    assert fields == {
        "John": {"city": "Arusha", "order_id": "1043"},
        "Asha": {"city": "Moshi", "note": "hi"},
    }


def test_an_update_import_merges_custom_fields(api, alice):
    make_contact(alice, phone_number="+255712345678", custom_fields={"city": "Dar", "tier": "1"})
    data = result(
        upload(
            api,
            "name,phone_number,city,order_id\nJohn,0712345678,Arusha,7\n",
            on_duplicate="update",
        )
    )
    assert data["updated"] == 1
    contact = Contact.objects.get()
    assert contact.custom_fields == {"city": "Arusha", "tier": "1", "order_id": "7"}


def test_an_update_that_would_pass_20_custom_fields_fails_its_row(api, alice):
    current = {f"k{i}": "x" for i in range(19)}
    make_contact(alice, phone_number="+255712345678", custom_fields=current)
    csv = "name,phone_number,city,zone\nJohn,0712345678,Arusha,north\nAsha,0754111222,Moshi,\n"
    data = result(upload(api, csv, on_duplicate="update"))
    assert (data["created"], data["updated"], data["failed"]) == (1, 0, 1)
    assert data["errors"] == [
        {"row": 2, "field": "custom_fields", "reason": "at most 20 keys; the change would make 21"}
    ]
    assert Contact.objects.get(phone_number="+255712345678").custom_fields == current


def test_a_custom_field_value_over_255_characters_fails_its_row(api):
    csv = "name,phone_number,city\nJohn,0712345678," + "a" * 256 + "\nAsha,0754111222,Moshi\n"
    data = result(upload(api, csv))
    assert data["created"] == 1
    assert data["errors"] == [
        {"row": 2, "field": "city", "reason": "is longer than 255 characters"}
    ]


def test_a_wide_file_is_read_while_no_row_fills_more_than_20_custom_fields(api):
    """The limit is a contact's, as through the API: 22 columns (an export of contacts with
    different keys) import; a row filling 21 of them fails alone."""
    extra = ",".join(f"f{i}" for i in range(22))
    first = "John,0712345678," + ",".join(["x"] * 11) + "," * 11
    second = "Asha,0754111222," + "," * 11 + ",".join(["y"] * 11)
    third = "Juma,0688000999," + ",".join(["z"] * 21) + ","
    data = result(upload(api, f"name,phone_number,{extra}\n{first}\n{second}\n{third}\n"))
    assert (data["created"], data["failed"]) == (2, 1)
    assert data["errors"] == [
        {
            "row": 4,
            "field": "custom_fields",
            "reason": "fills 21 custom fields; a contact has at most 20",
        }
    ]
    assert len(Contact.objects.get(name="Asha").custom_fields) == 11


def test_known_columns_are_named_as_people_write_them(api, alice):
    csv = "Name,Phone Number,Opted-Out,IS ACTIVE\nAsha,0712345678,yes,hapana\n"
    data = result(upload(api, csv))
    assert (data["created"], data["opted_out"], data["ignored_columns"]) == (1, 1, [])
    contact = Contact.objects.get()
    assert (contact.opted_out, contact.is_active) == (True, False)


def test_an_empty_is_active_cell_leaves_an_existing_contact_as_it_is(api, alice):
    make_contact(alice, 1, phone_number="+255712345678", is_active=False)
    make_contact(alice, 2, phone_number="+255754111222", is_active=False)
    csv = HEADER + "A2,0712345678,,,\nB2,0754111222,,,ndiyo\nC,0688000999,,,\n"
    data = result(upload(api, csv, on_duplicate="update"))
    assert (data["created"], data["updated"]) == (1, 2)
    active = dict(Contact.objects.values_list("name", "is_active"))
    assert active == {"A2": False, "B2": True, "C": True}


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ("John,12345,,,", "phone_number", "'12345' is not a valid phone number"),
        ("John,+255222123456,,,", "phone_number", "'+255222123456' is not a mobile number"),
        ("John,,,,", "phone_number", "'' is empty"),
        (",0712345678,,,", "name", "is required"),
        ("   ,0712345678,,,", "name", "is required"),
        ("x" * 201 + ",0712345678,,,", "name", "is longer than 200 characters"),
        ("John,0712345678,not-an-email,,", "email", "'not-an-email' is not a valid email"),
        ("John,0712345678,,,maybe", "is_active", "'maybe' is not true or false"),
        ("John,0712345678,,a;" + "b" * 51 + ",", "tags", None),
    ],
    ids=[
        "bad-phone",
        "landline",
        "no-phone",
        "no-name",
        "blank-name",
        "long-name",
        "bad-email",
        "bad-is-active",
        "long-tag",
    ],
)
def test_each_kind_of_row_error_is_reported_and_the_row_left_out(api, row, field, reason):
    csv = HEADER + "Good,0754000111,,,\n" + row + "\n"
    data = result(upload(api, csv))
    assert (data["created"], data["failed"]) == (1, 1)
    assert len(data["errors"]) == 1
    error = data["errors"][0]
    assert (error["row"], error["field"]) == (3, field)
    if reason is not None:
        assert error["reason"] == reason
    assert Contact.objects.count() == 1


def test_a_row_with_several_errors_lists_each_and_counts_once(api):
    data = result(upload(api, HEADER + ",123,bad,,nah\n"))
    assert data["failed"] == 1
    assert {e["field"] for e in data["errors"]} == {"name", "phone_number", "email", "is_active"}
    assert {e["row"] for e in data["errors"]} == {2}


def test_is_active_accepts_the_usual_spellings(api):
    values = ["true", "TRUE", "1", "yes", "Y", "t", "Ndiyo", "false", "0", "No", "n", "F"]
    values += ["hapana", ""]
    rows = "".join(f"P{n},+25571{n:07d},,,{v}\n" for n, v in enumerate(values))
    assert result(upload(api, HEADER + rows))["created"] == len(values)
    active = dict(Contact.objects.values_list("name", "is_active"))
    assert [active[f"P{n}"] for n in range(len(values))] == [True] * 7 + [False] * 6 + [True]


def test_a_number_repeated_in_the_file_fails_the_later_row(api):
    csv = HEADER + "First,0712345678,,,\nSecond,+255712345678,,,\nThird,712345678,,,\n"
    data = result(upload(api, csv))
    assert (data["created"], data["failed"]) == (1, 2)
    assert data["errors"] == [
        {"row": 3, "field": "phone_number", "reason": "+255712345678 is a duplicate of row 2"},
        {"row": 4, "field": "phone_number", "reason": "+255712345678 is a duplicate of row 2"},
    ]
    assert Contact.objects.get().name == "First"


def test_a_failed_row_does_not_claim_its_number(api):
    csv = HEADER + ",0712345678,,,\nSecond,0712345678,,,\n"
    data = result(upload(api, csv))
    assert (data["created"], data["failed"]) == (1, 1)
    assert Contact.objects.get().name == "Second"


def test_rows_are_numbered_as_in_the_file_counting_blank_lines(api):
    csv = HEADER + "Good,0754000111,,,\n\nBad,1,,,\n"
    assert result(upload(api, csv))["errors"][0]["row"] == 4


def test_an_existing_number_is_skipped_by_default(api, alice):
    existing = make_contact(alice, name="Old", phone_number="+255712345678", tags=["keep"])
    data = result(upload(api, HEADER + "New,0712345678,new@example.com,vip,false\n"))
    assert (data["created"], data["updated"], data["skipped"]) == (0, 0, 1)
    existing.refresh_from_db()
    assert (existing.name, existing.tags, existing.is_active) == ("Old", ["keep"], True)


def test_an_existing_number_is_updated_with_on_duplicate_update(api, alice):
    existing = make_contact(alice, name="Old", phone_number="+255712345678", tags=["keep"])
    csv = HEADER + "New,0712345678,new@example.com,vip,false\nOther,0754000111,,,\n"
    data = result(upload(api, csv, on_duplicate="update"))
    assert (data["created"], data["updated"], data["skipped"]) == (1, 1, 0)
    existing.refresh_from_db()
    assert (existing.name, existing.email, existing.tags, existing.is_active) == (
        "New",
        "new@example.com",
        ["vip"],
        False,
    )
    assert existing.updated_at > existing.created_at
    assert Contact.objects.filter(account=alice).count() == 2


def test_update_leaves_the_columns_the_file_lacks_alone(api, alice):
    existing = make_contact(
        alice, phone_number="+255712345678", tags=["keep"], email="keep@example.com"
    )
    result(upload(api, "name,phone_number\nRenamed,0712345678\n", on_duplicate="update"))
    existing.refresh_from_db()
    assert (existing.name, existing.tags, existing.email) == (
        "Renamed",
        ["keep"],
        "keep@example.com",
    )


def test_on_duplicate_can_be_a_query_parameter_for_a_raw_body(api, alice):
    make_contact(alice, name="Old", phone_number="+255712345678")
    data = result(post_csv(api, HEADER + "New,0712345678,,,\n", "?on_duplicate=update"))
    assert data["updated"] == 1
    assert Contact.objects.get().name == "New"


def test_an_existing_contact_of_another_account_does_not_count(api, bob):
    make_contact(bob, phone_number="+255712345678")
    assert result(upload(api, HEADER + "Mine,0712345678,,,\n"))["created"] == 1


def test_a_bad_on_duplicate_is_a_validation_error(api):
    body = assert_envelope(upload(api, HEADER, on_duplicate="merge"), 400, "VALIDATION_ERROR")
    assert "on_duplicate" in body["details"]


def test_a_header_only_file_imports_nothing(api):
    assert result(upload(api, HEADER))["created"] == 0


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\n\n",
        "name,email\nJohn,john@example.com\n",
        "phone_number\n0712345678\n",
        "name,name,phone_number\na,b,0712345678\n",
        "name|phone_number\nJohn|0712345678\n",
    ],
    ids=[
        "empty",
        "blank-lines",
        "no-phone-column",
        "no-name-column",
        "repeated-column",
        "pipe-separated",
    ],
)
def test_a_file_without_the_required_header_is_a_validation_error(api, content):
    body = assert_envelope(post_csv(api, content), 400, "VALIDATION_ERROR")
    assert "file" in body["details"]
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("content", "names"),
    [
        # Excel's plain "CSV" on Windows: Windows-1252, the euro sign and accents included.
        (
            "name,phone_number\r\nJosé,0712345678\r\nZoë €,0754000001\r\n".encode("cp1252"),
            ["José", "Zoë €"],
        ),
        # Excel where the decimal mark is a comma separates columns with semicolons.
        ("name;phone_number;tags\r\nAsha;0712345678;vip|lead\r\n".encode("cp1252"), ["Asha"]),
        # "CSV UTF-8" starts with a byte order mark.
        ("\ufeffname,phone_number\nJuma,0712345678\n".encode(), ["Juma"]),
        # "Unicode text": UTF-16 with a byte order mark, tab-separated.
        ("name\tphone_number\nNeema 🌍\t0712345678\n".encode("utf-16"), ["Neema 🌍"]),
    ],
    ids=["windows-1252", "semicolons", "utf8-bom", "utf16-tabs"],
)
def test_excels_usual_exports_are_read(api, content, names):
    data = result(upload(api, content))
    assert data["created"] == len(names) and data["failed"] == 0
    assert sorted(Contact.objects.values_list("name", flat=True)) == sorted(names)


def test_a_file_in_no_known_encoding_says_how_to_save_it(api):
    # 0x81 is undefined in Windows-1252, and the bytes are not UTF-8 either.
    body = assert_envelope(
        upload(api, b"name,phone_number\nJos\x81,0712345678\n"), 400, "VALIDATION_ERROR"
    )
    assert body["details"] == {
        "file": [
            "it is neither UTF-8 nor Windows-1252 (Excel) text; in Excel, save it as "
            "“CSV UTF-8 (comma delimited)”"
        ]
    }


def test_a_broken_utf16_file_is_a_validation_error(api):
    content = b"\xff\xfe" + "name,phone_number\n".encode("utf-16-le") + b"\x00\xd8"
    body = assert_envelope(upload(api, content), 400, "VALIDATION_ERROR")
    assert body["details"] == {"file": ["it starts like UTF-16 text but is not valid UTF-16"]}


def test_more_than_50000_rows_is_a_validation_error_and_imports_nothing(api):
    content = "name,phone_number\n" + "x,1\n" * 50_001
    body = assert_envelope(post_csv(api, content), 400, "VALIDATION_ERROR")
    assert body["details"] == {"file": ["At most 50000 rows per import; this file has 50001"]}
    assert not Contact.objects.exists()


def test_50000_rows_is_within_the_limit_and_errors_are_capped(api):
    content = "name,phone_number\n" + "x,1\n" * 50_000
    data = result(post_csv(api, content))
    assert data["failed"] == 50_000
    assert len(data["errors"]) == 1_000
    assert data["errors_truncated"] is True


def test_no_file_is_a_validation_error(api):
    response = api.client.post(URL, {"on_duplicate": "skip"}, format="multipart")
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "file" in body["details"]


def test_an_empty_raw_body_is_a_validation_error(api):
    assert_envelope(post_csv(api, b""), 400, "VALIDATION_ERROR")


def test_a_json_body_is_unsupported_media_type(api):
    body = assert_envelope(
        api.post("contacts/import/", {"rows": []}), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert "text/csv" in body["message"]


def test_a_body_over_the_import_limit_is_payload_too_large(api, settings):
    settings.MIFUMO_MAX_IMPORT_BODY_BYTES = 1024
    content = HEADER + "".join(f"P{n},+25571{n:07d},,,\n" for n in range(100))
    assert_envelope(post_csv(api, content), 413, "PAYLOAD_TOO_LARGE")


def test_a_gzip_bomb_is_payload_too_large(api, monkeypatch):
    monkeypatch.setattr("contacts.csvio.MAX_DECOMPRESSED_BYTES", 10_000)
    packed = gzip.compress(HEADER.encode() + b"x" * 20_000)
    assert_envelope(upload(api, packed), 413, "PAYLOAD_TOO_LARGE")


def test_a_cell_beyond_the_csv_field_limit_is_a_validation_error(api):
    content = HEADER + "John,0712345678,," + "x" * 200_000 + ",\n"
    body = assert_envelope(post_csv(api, content), 400, "VALIDATION_ERROR")
    assert "file" in body["details"]


def test_get_on_import_is_method_not_allowed(api):
    assert_envelope(api.get("contacts/import/"), 405, "METHOD_NOT_ALLOWED")


def test_a_batch_that_hits_the_unique_constraint_is_read_again_and_retried(api, alice, monkeypatch):
    from contacts import services

    original = services._write
    calls: list[int] = []

    def write_after_a_rival(*, account, rows, **kwargs):
        # The rival row goes down with the savepoint, as a concurrent one would not; what
        # matters here is that the clash is retried rather than answered with a 500.
        if not calls:
            make_contact(account, name="Rival", phone_number=rows[0].phone_number)
        calls.append(len(rows))
        return original(account=account, rows=rows, **kwargs)

    monkeypatch.setattr(services, "_write", write_after_a_rival)
    data = result(upload(api, HEADER + "A,0712345678,,,\nB,0754000111,,,\n"))
    assert calls == [2, 2]
    assert data["created"] == 2
    assert set(Contact.objects.values_list("name", flat=True)) == {"A", "B"}


@pytest.mark.django_db
def test_idempotency_key_tells_two_uploads_with_the_same_name_apart(api):
    def upload(content: bytes):
        return api.client.post(
            "/api/integration/v1/contacts/import/",
            {"file": SimpleUploadedFile("contacts.csv", content, content_type="text/csv")},
            HTTP_IDEMPOTENCY_KEY="import-1",
        )

    first = upload(b"name,phone_number\nAsha,0712345678\n")
    assert first.status_code == 200
    again = upload(b"name,phone_number\nAsha,0712345678\n")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = upload(b"name,phone_number\nJuma,0754000111\n")
    assert other.status_code == 409 and other.json()["error_code"] == "CONFLICT"
