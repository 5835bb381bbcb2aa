import pytest

from integration.models import Permission
from tests.helpers import assert_envelope

# (method, path, body, permission needed)
ENDPOINTS = [
    ("get", "sms/balance/", None, "read"),
    ("get", "sms/delivery-reports/", None, "read"),
    ("get", "sms/sender-ids/", None, "read"),
    ("post", "sms/sender-ids/request/", {"sender_id": "ACME"}, "write"),
    ("get", "keys/", None, "admin"),
    ("post", "keys/create/", {"name": "k"}, "admin"),
]
LEVEL = {"read": 1, "write": 2, "admin": 3}


@pytest.mark.django_db
@pytest.mark.parametrize("key_permission", [Permission.READ, Permission.WRITE, Permission.ADMIN])
@pytest.mark.parametrize(("method", "path", "body", "needed"), ENDPOINTS)
def test_permission_matrix(alice, api_for, key_permission, method, path, body, needed):
    api = api_for(alice, key_permission)
    response = getattr(api, method)(path, body) if body is not None else getattr(api, method)(path)
    if LEVEL[key_permission] >= LEVEL[needed]:
        assert response.status_code < 400, response.content
    else:
        body = assert_envelope(response, 403, "PERMISSION_DENIED")
        assert needed in body["message"]
