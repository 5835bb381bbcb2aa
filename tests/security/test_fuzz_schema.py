"""Property-based fuzzing of every operation in the OpenAPI schema, through the WSGI app.

Every generated request is sent with a read, a write and an admin key. No response may be
a 5xx, and every documented response must match its schema. Schemathesis never generates
lone surrogates (they cannot be sent as UTF-8), so some cases get one, or a NUL, put into a
string they send: those must be refused with a 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.conf import settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from integration.models import Account, Permission
from integration.services import account_create, account_top_up, api_key_create
from mifumo.wsgi import application
from sms.models import SenderId
from tests.helpers import keep_connection
from tests.security import Owned, seed

SCHEMA_PATH = f"{settings.MIFUMO_API_PREFIX}schema/?format=json"
CHECKS = [not_a_server_error, response_schema_conformance]
PERMISSIONS = (Permission.READ, Permission.WRITE, Permission.ADMIN)


@dataclass
class FuzzResult:
    cases: int = 0
    hostile: int = 0  # cases sent with a NUL or a lone surrogate put in
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def fuzz_account(name: str = "fuzz") -> tuple[Account, dict[str, str], Owned]:
    """An account that neither the balance nor the rate limits stop, its keys and objects."""
    account = account_create(name=name, balance="1000000000.00")
    Account.objects.filter(pk=account.pk).update(
        api_per_hour=10_000_000, sms_per_minute=10_000_000, contacts_per_hour=10_000_000
    )
    account.refresh_from_db()
    SenderId.objects.get_or_create(
        account=account, value="MIFUMO", defaults={"status": SenderId.Status.APPROVED}
    )
    raw = {
        str(p): api_key_create(account=account, name=f"fuzz {p}", permission=p).raw
        for p in PERMISSIONS
    }
    return account, raw, seed(account)


HOSTILE = (None, None, "\x00", "\ud800")


def _put(value: Any, text: str) -> tuple[Any, bool]:
    """``value`` with ``text`` added to its first string (or as a key of its first object)."""
    if isinstance(value, str):
        return value + text, True
    if isinstance(value, list):
        for index, item in enumerate(value):
            changed, done = _put(item, text)
            if done:
                return [*value[:index], changed, *value[index + 1 :]], True
    if isinstance(value, dict):
        for key, item in value.items():
            changed, done = _put(item, text)
            if done:
                return {**value, key: changed}, True
        return {**value, f"k{text}": "x"}, True
    return value, False


def inject(case: Any, text: str) -> bool:
    """Put ``text`` into something ``case`` sends: its JSON body, else (a NUL only: a URL
    cannot carry a lone surrogate) a query parameter or a path id. False if nothing fits."""
    if isinstance(case.body, dict | list) and "json" in str(case.media_type or "json"):
        body, done = _put(case.body, text)
        if done:
            # Changed in place: schemathesis then sends it as it is instead of validating the
            # edit against the schema first, which cannot encode a lone surrogate.
            if isinstance(case.body, dict):
                case.body.clear()
                case.body.update(body)
            else:
                case.body[:] = body
            return True
    if text != "\x00":
        return False
    for part in ("query", "path_parameters"):
        values = getattr(case, part) or {}
        for name, value in values.items():
            if isinstance(value, str):
                setattr(case, part, {**values, name: value + text})
                return True
    return False


def _known_ids(owned: Owned) -> dict[str, str]:
    # The key seeded for its id is not one the fuzzer authenticates with, so revoking or
    # rotating it leaves the run's own keys working.
    return {
        "message_id": owned.message.pk,
        "contact_id": owned.contact.pk,
        "segment_id": owned.segment.pk,
        "template_id": owned.template.pk,
        "webhook_id": owned.endpoint.pk,
        "delivery_id": owned.delivery.pk,
        "key_id": str(owned.api_key.pk),
        "inbound_id": owned.inbound.pk,
    }


def run_fuzz(
    account: Account, raw_keys: dict[str, str], owned: Owned, *, max_examples: int
) -> FuzzResult:
    """Fuzz every operation with every key; returns what happened instead of raising, so
    one broken operation does not hide the others."""
    result = FuzzResult()
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)
    known = _known_ids(owned)
    own_key_ids = {
        str(pk) for pk in account.api_keys.exclude(pk=owned.api_key.pk).values_list("pk", flat=True)
    }
    with keep_connection():
        for found in schema.get_all_operations():
            operation = found.ok()  # type: ignore[union-attr]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for permission, raw in raw_keys.items():
                    _fuzz_operation(
                        operation,
                        mode,
                        permission,
                        raw,
                        known,
                        own_key_ids,
                        max_examples,
                        result,
                        account,
                    )
    return result


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    permission: str,
    raw: str,
    known: dict[str, str],
    own_key_ids: set[str],
    max_examples: int,
    result: FuzzResult,
    account: Account,
) -> None:
    headers = {"Authorization": f"Bearer {raw}"}
    names = [p.name for p in operation.path_parameters]

    @hsettings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(mode), real_ids=st.booleans(), hostile=st.sampled_from(HOSTILE)
    )
    def attempt(case: Any, real_ids: bool, hostile: str | None) -> None:
        if real_ids and names:
            # Half the cases reach existing objects; random ids only ever meet 404.
            case.path_parameters = {**case.path_parameters, **{n: known[n] for n in names}}
        if str((case.path_parameters or {}).get("key_id")) in own_key_ids:
            # Revoking or rotating the keys the run authenticates with would end it early.
            case.path_parameters = {**case.path_parameters, "key_id": known["key_id"]}
        if account.balance < 1_000_000:
            account_top_up(account=account, amount="1000000000.00", note="fuzz")
            account.refresh_from_db()
        # Negative generation may drop or mangle the credentials; they are not under test here.
        case.headers = {**(case.headers or {}), **headers}
        injected = hostile is not None and inject(case, hostile)
        response = case.call()
        result.cases += 1
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if injected and not 400 <= response.status_code < 500:
            result.failures.append(
                f"{operation.method.upper()} {operation.path} [{permission}, {mode.value}] "
                f"with {hostile!r} -> {response.status_code}, not a 4xx"
            )
        result.hostile += injected
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:
            failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
            result.failures.extend(
                f"{operation.method.upper()} {operation.path} [{permission}, {mode.value}] "
                f"-> {response.status_code}: {getattr(f, 'title', type(f).__name__)}: "
                f"{str(f).splitlines()[0][:300]}"
                for f in failures
            )

    attempt()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_operation_answers_5xx_or_breaks_its_schema() -> None:
    account, raw_keys, owned = fuzz_account()
    result = run_fuzz(account, raw_keys, owned, max_examples=5)
    print(
        f"fuzz: {result.cases} cases ({result.hostile} hostile), "
        f"statuses {sorted(result.statuses.items())}"
    )
    assert result.cases > 1000
    assert result.hostile > 200
    assert not result.failures, "\n".join(result.failures[:20])
    assert not any(status >= 500 for status in result.statuses)
