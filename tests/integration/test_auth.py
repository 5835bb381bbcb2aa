from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integration import keys
from integration.models import Account, ApiKey
from integration.services import api_key_create, api_key_revoke, api_key_rotate
from tests.helpers import Api, assert_envelope

BALANCE = "sms/balance/"


def assert_401(response, reason_fragment):
    body = assert_envelope(response, 401, "INVALID_CREDENTIALS")
    assert reason_fragment in body["details"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    return body


@pytest.mark.django_db
def test_missing_header_is_401(anon):
    assert_401(anon.get(BALANCE), "Missing")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token mif_live_x", "mif_live_abc"],
)
def test_malformed_header_is_401(header):
    api = Api(None)
    api.client.credentials(HTTP_AUTHORIZATION=header)
    assert_401(api.get(BALANCE), "Malformed")


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["mif_live_short", "mif_prod_" + "a" * 32, "sk_" + "a" * 40])
def test_malformed_key_is_401(raw):
    assert_401(Api(raw).get(BALANCE), "Malformed")


@pytest.mark.django_db
def test_unknown_key_is_401(alice):
    assert_401(Api(keys.generate(test=False)).get(BALANCE), "invalid")


@pytest.mark.django_db
def test_key_with_a_known_prefix_but_wrong_secret_is_401(alice_key):
    raw = alice_key.raw
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert_401(Api(tampered).get(BALANCE), "invalid")


@pytest.mark.django_db
def test_scheme_is_case_insensitive_and_spaces_are_ignored(alice_key):
    api = Api(None)
    api.client.credentials(HTTP_AUTHORIZATION=f"  bEaReR   {alice_key.raw}  ")
    assert_envelope(api.get(BALANCE), 200)


@pytest.mark.django_db
def test_revoked_key_is_rejected_on_the_very_next_request(alice_key):
    api = Api(alice_key.raw)
    assert_envelope(api.get(BALANCE), 200)
    api_key_revoke(api_key=alice_key.api_key)
    assert_401(api.get(BALANCE), "revoked")


@pytest.mark.django_db
def test_expired_key_is_401(alice):
    issued = api_key_create(
        account=alice, name="old", expires_at=timezone.now() + timedelta(seconds=60)
    )
    assert_envelope(Api(issued.raw).get(BALANCE), 200)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_401(Api(issued.raw).get(BALANCE), "expired")


@pytest.mark.django_db
def test_rotated_key_old_secret_dies_new_one_works(alice_key):
    old = alice_key.raw
    new = api_key_rotate(api_key=alice_key.api_key).raw
    assert new != old
    assert_401(Api(old).get(BALANCE), "revoked")
    assert_envelope(Api(new).get(BALANCE), 200)


@pytest.mark.django_db
def test_test_and_live_keys_both_authenticate_with_their_prefixes(alice, make_key):
    live = make_key(alice, test=False)
    test = make_key(alice, test=True)
    assert live.raw.startswith("mif_live_") and len(live.raw) == 41
    assert test.raw.startswith("mif_test_") and len(test.raw) == 41
    assert_envelope(Api(live.raw).get(BALANCE), 200)
    assert_envelope(Api(test.raw).get(BALANCE), 200)


@pytest.mark.django_db
def test_suspended_account_is_refused(alice, alice_key):
    Account.objects.filter(pk=alice.pk).update(status=Account.Status.SUSPENDED)
    assert_envelope(Api(alice_key.raw).get(BALANCE), 403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_last_used_is_recorded_at_most_once_a_minute(alice_key):
    api = Api(alice_key.raw)
    api.get(BALANCE)
    first = ApiKey.objects.get(pk=alice_key.api_key.pk).last_used_at
    assert first is not None
    api.get(BALANCE)
    assert ApiKey.objects.get(pk=alice_key.api_key.pk).last_used_at == first


@pytest.mark.django_db
def test_no_table_contains_a_raw_key(alice, make_key):
    raws = [make_key(alice, test=t).raw for t in (False, True)]
    raws.append(api_key_rotate(api_key=make_key(alice).api_key).raw)
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - table names from introspection
            dump = repr(cursor.fetchall())
            for raw in raws:
                assert raw not in dump, f"raw key found in {table}"
                assert raw[9:] not in dump, f"key secret found in {table}"


@pytest.mark.django_db
def test_encrypted_copy_decrypts_to_the_key(alice_key):
    stored = ApiKey.objects.get(pk=alice_key.api_key.pk)
    assert keys.decrypt(stored.encrypted_key) == alice_key.raw
