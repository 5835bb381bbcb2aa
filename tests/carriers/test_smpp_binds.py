"""Several SMPP binds from ``MIFUMO_SMPP_BINDS``: parsing (JSON or a file), the system check of
each bind, routes by prefix, and two binds to two local SMSCs each taking its own network."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from mifumo.smpp_binds import smpp_binds
from sms import routing
from sms.checks import check_carriers
from sms.models import CarrierRoute, Recipient
from sms.services import message_send
from tests.carriers.smsc import Smsc

pytestmark = pytest.mark.timeout(60)

SMPP = "sms.carriers.smpp.SmppCarrier"
LONG = "Habari! " * 25  # 200 GSM-7 characters: two parts


@pytest.fixture(autouse=True)
def _fresh_routes() -> Iterator[None]:
    """Routes are cached for a few seconds: none of this module's may outlive its test."""
    routing.clear_cache()
    yield
    routing.clear_cache()


def bind(name: str, port: int = 2775, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "system_id": "mifumo",
        "password": "secret",
        **options,
    }


# -- parsing ---------------------------------------------------------------------------------


def test_a_json_list_becomes_one_carrier_per_bind() -> None:
    value = json.dumps(
        [bind("vodacom", routes=["25575"], window=50), bind("airtel", concatenation="sar")]
    )
    carriers = smpp_binds(value)
    assert list(carriers) == ["vodacom", "airtel"]
    assert carriers["vodacom"]["BACKEND"] == SMPP
    assert carriers["vodacom"]["ROUTES"] == ["25575"]
    assert carriers["vodacom"]["WINDOW"] == 50
    assert carriers["airtel"]["CONCATENATION"] == "sar"
    assert "NAME" not in carriers["airtel"]


def test_an_object_of_names_and_a_file_path_are_read_the_same(tmp_path: Path) -> None:
    by_name = {"vodacom": {k: v for k, v in bind("x").items() if k != "name"}}
    path = tmp_path / "binds.json"
    path.write_text(json.dumps(by_name), encoding="utf-8")
    assert smpp_binds(str(path)) == smpp_binds(json.dumps(by_name))
    assert smpp_binds(str(path))["vodacom"]["HOST"] == "127.0.0.1"
    assert smpp_binds("") == {} and smpp_binds(None) == {}
    path.write_text('"one bind"', encoding="utf-8")
    with pytest.raises(ImproperlyConfigured, match=f"file {path} must be a list of binds"):
        smpp_binds(str(path))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "MIFUMO_SMPP_BINDS is not valid JSON"),
        ("/nonexistent/binds.json", "neither JSON nor a readable file"),
        ("[1]", "bind 0 must be an object of options"),
        ('[{"host": "h"}]', 'bind 0 needs a "name"'),
        ('[{"name": "a"}, {"name": "a"}]', "two binds are named 'a'"),
    ],
)
def test_bad_values_say_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        smpp_binds(value)


# -- the system check ------------------------------------------------------------------------


def test_each_bind_is_checked_and_named_by_the_setting(settings: Any) -> None:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        **smpp_binds(
            json.dumps(
                [
                    bind("good", routes=["25575"]),
                    bind("failures", registered_delivery=3),
                    bind("nopassword", password=""),
                    bind("badroutes", routes=["+255 75"]),
                ]
            )
        ),
    }
    found = [(m.id, m.msg) for m in check_carriers()]
    assert not [msg for _, msg in found if "'good'" in msg]
    assert (
        "sms.E006",
        "MIFUMO_SMPP_BINDS bind 'failures': REGISTERED_DELIVERY must be 0 (none), 1 (every "
        "final state) or 2 (failures only), not 3",
    ) in found
    assert any(
        code == "sms.E006"
        and msg.startswith("MIFUMO_SMPP_BINDS bind 'nopassword'")
        and "'PASSWORD'" in msg
        for code, msg in found
    )
    assert (
        "sms.E014",
        "MIFUMO_SMPP_BINDS bind 'badroutes'['ROUTES'] = ['+255 75'] must be a list of number "
        "prefixes",
    ) in found


# -- routes ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bind_routes_route_by_prefix_and_a_database_route_takes_precedence(
    settings: Any,
) -> None:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        **smpp_binds(
            json.dumps(
                [bind("vodacom", routes=["25575", "25576"]), bind("airtel", routes=["25578"])]
            )
        ),
    }
    routing.clear_cache()
    assert routing.carriers_for_phone("+255754000001") == ("vodacom",)
    assert routing.carriers_for_phone("+255784000001") == ("airtel",)
    assert routing.carriers_for_phone("+255714000001") == (settings.MIFUMO_CARRIER,)
    CarrierRoute.objects.create(prefix="25578", carriers=["vodacom", "airtel"])
    assert routing.carriers_for_phone("+255784000001") == ("vodacom", "airtel")


# -- two binds, two SMSCs --------------------------------------------------------------------


@pytest.fixture
def two_smscs() -> Iterator[tuple[Smsc, Smsc]]:
    with Smsc(auto_receipt="DELIVRD") as vodacom, Smsc(auto_receipt="DELIVRD") as airtel:
        yield vodacom, airtel


@pytest.mark.django_db(transaction=True)
def test_two_binds_each_take_their_network_with_their_own_options(
    settings: Any, alice: Any, two_smscs: tuple[Smsc, Smsc]
) -> None:
    vodacom, airtel = two_smscs
    # Submitted from this process (no run_smpp) so the test needs no other process.
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        **smpp_binds(
            json.dumps(
                [
                    bind(
                        "vodacom",
                        vodacom.port,
                        routes=["25575"],
                        registered_delivery=2,
                        dedicated_process=False,
                    ),
                    bind(
                        "airtel",
                        airtel.port,
                        routes=["25578"],
                        concatenation="sar",
                        dedicated_process=False,
                    ),
                ]
            )
        ),
    }
    routing.clear_cache()
    alice.max_message_length = 500
    alice.save(update_fields=["max_message_length"])
    phones = ["+255754000001", "+255754000002", "+255784000001"]
    message = message_send(account=alice, text=LONG, recipients=phones).message

    deadline = time.monotonic() + 20
    while set(message.recipients.values_list("status", flat=True)) != {"delivered"}:
        assert time.monotonic() < deadline, list(message.recipients.values("phone", "status"))
        time.sleep(0.1)
    carriers = dict(message.recipients.values_list("phone", "carrier"))
    assert carriers == {phones[0]: "vodacom", phones[1]: "vodacom", phones[2]: "airtel"}
    assert sorted(vodacom.accepted_by_destination()) == ["255754000001", "255754000002"]
    assert list(airtel.accepted_by_destination()) == ["255784000001"]
    # Each bind's own options reached its SMSC: failures-only receipts and UDH on one, every
    # receipt and SAR TLVs (no UDH) on the other.
    assert {s.pdu.registered_delivery for s in vodacom.accepted()} == {2}
    assert {s.esm_class & 0x40 for s in vodacom.accepted()} == {0x40}
    assert {s.pdu.registered_delivery for s in airtel.accepted()} == {1}
    assert {s.esm_class & 0x40 for s in airtel.accepted()} == {0}
    assert {s.segment[1] for s in airtel.accepted()} == {2}
    assert Recipient.objects.filter(message=message, delivered_at__isnull=False).count() == 3
