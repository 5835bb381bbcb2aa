"""Routes by number prefix, failover along a route, submit attempts, handoffs to carriers that
submit from their own process, the route admin and the carrier system checks."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from celery.exceptions import Retry
from django.core.cache import cache
from django.utils import timezone

from sms import dispatch, routing
from sms.carriers.base import BaseCarrier, CarrierError, OutboundSms, SubmitResult
from sms.checks import check_carriers, check_routes
from sms.models import CarrierMessage, CarrierRoute, Handoff, Recipient, SubmitAttempt
from sms.services import message_send
from sms.tasks import dispatch_message

VODACOM = "+255744000111"  # 25574, 25575 and 25576 are Vodacom
VODACOM_2 = "+255745000222"
AIRTEL = "+255784000333"
TIGO = "+255654000444"
HALOTEL = "+255621000555"

_ids = itertools.count(1)


class RecordingCarrier(BaseCarrier):
    """Carriers for these tests, one per configured name: each records what it accepted and
    can be told to be down or to refuse numbers."""

    carrier_name = "recording"

    accepted: ClassVar[dict[str, list[OutboundSms]]] = {}
    down: ClassVar[dict[str, CarrierError]] = {}
    refuse: ClassVar[dict[str, dict[str, bool]]] = {}  # carrier -> phone -> permanent
    batches: ClassVar[list[tuple[str, int]]] = []

    @classmethod
    def reset(cls) -> None:
        cls.accepted = {}
        cls.down = {}
        cls.refuse = {}
        cls.batches = []

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        self.batches.append((self.name, len(batch)))
        if self.name in self.down:
            raise self.down[self.name]
        refused = self.refuse.get(self.name, {})
        results = []
        for sms in batch:
            if sms.to in refused:
                permanent = refused[sms.to]
                code = "INVALID_DEST" if permanent else "THROTTLED"
                results.append(SubmitResult.rejected(sms, code, "refused", permanent=permanent))
                continue
            self.accepted.setdefault(self.name, []).append(sms)
            results.append(SubmitResult.ok(sms, f"{self.name}-{next(_ids)}"))
        return results

    def parse_recipient_status(
        self, response: list[SubmitResult], batch: Sequence[OutboundSms]
    ) -> list[SubmitResult]:
        return response


BACKEND = f"{__name__}.RecordingCarrier"


@pytest.fixture(autouse=True)
def carriers(settings: Any) -> Iterator[type[RecordingCarrier]]:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "alpha": {"BACKEND": BACKEND},
        "beta": {"BACKEND": BACKEND},
        "gamma": {"BACKEND": BACKEND},
        "bind": {"BACKEND": BACKEND, "DEDICATED_PROCESS": True},
    }
    settings.MIFUMO_CARRIER = "alpha"
    RecordingCarrier.reset()
    routing.clear_cache()
    yield RecordingCarrier
    routing.clear_cache()
    RecordingCarrier.reset()


def route(prefix: str, *carriers: str, active: bool = True) -> CarrierRoute:
    return CarrierRoute.objects.create(prefix=prefix, carriers=list(carriers), active=active)


def send(account: Any, phones: Sequence[str], **kwargs: Any) -> Any:
    return message_send(account=account, text="Habari", recipients=list(phones), **kwargs).message


def accepted_phones(name: str) -> list[str]:
    return sorted(sms.to for sms in RecordingCarrier.accepted.get(name, []))


def states(message: Any) -> dict[str, tuple[str, str]]:
    return {
        phone: (status, carrier)
        for phone, status, carrier in Recipient.objects.filter(message=message).values_list(
            "phone", "status", "carrier"
        )
    }


# -- lookup ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_longest_active_prefix_wins() -> None:
    route("255", "beta")
    route("25574", "gamma", "beta")
    route("2557", "alpha")
    route("25578", "gamma", active=False)
    assert routing.carriers_for_phone(VODACOM) == ("gamma", "beta")
    assert routing.carriers_for_phone(AIRTEL) == ("alpha",)  # the inactive 25578 is ignored
    assert routing.carriers_for_phone(TIGO) == ("beta",)


@pytest.mark.django_db
def test_numbers_no_route_covers_go_to_the_default_carrier(settings: Any) -> None:
    route("25578", "beta")
    settings.MIFUMO_CARRIER = "gamma"
    assert routing.carriers_for_phone(TIGO) == ("gamma",)
    assert routing.carriers_for_phone("+254712345678") == ("gamma",)


@pytest.mark.django_db
def test_test_keys_always_use_the_simulator() -> None:
    route("255", "beta")
    assert routing.carriers_for_phone(VODACOM, is_test=True) == ("simulator",)


@pytest.mark.django_db
def test_the_route_table_is_read_once_and_edits_here_are_seen_at_once(
    django_assert_num_queries: Any,
) -> None:
    saved = route("25574", "beta")
    assert routing.carriers_for_phone(VODACOM) == ("beta",)
    with django_assert_num_queries(0):
        assert routing.carriers_for_phone(VODACOM_2) == ("beta",)
    saved.carriers = ["gamma"]
    saved.save()
    assert routing.carriers_for_phone(VODACOM) == ("gamma",)
    saved.delete()
    assert routing.carriers_for_phone(VODACOM) == ("alpha",)


@pytest.mark.django_db
def test_a_test_key_message_goes_to_the_simulator_whatever_the_routes(
    alice: Any, make_key: Any
) -> None:
    route("255", "beta")
    message = send(alice, [VODACOM], api_key=make_key(alice, test=True).api_key)
    dispatch.message_dispatch(message_id=message.id)
    assert states(message) == {VODACOM: ("delivered", "simulator")}
    assert not RecordingCarrier.batches


# -- dispatch by route ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_message_is_split_by_route_and_every_offer_is_recorded(alice: Any) -> None:
    route("25574", "beta")
    route("25578", "gamma")
    message = send(alice, [VODACOM, VODACOM_2, AIRTEL, TIGO])
    report = dispatch.message_dispatch(message_id=message.id)
    assert report.submitted == 4
    assert accepted_phones("beta") == [VODACOM, VODACOM_2]
    assert accepted_phones("gamma") == [AIRTEL]
    assert accepted_phones("alpha") == [TIGO]
    assert states(message) == {
        VODACOM: ("sent", "beta"),
        VODACOM_2: ("sent", "beta"),
        AIRTEL: ("sent", "gamma"),
        TIGO: ("sent", "alpha"),
    }
    attempts = {
        a.carrier: (a.recipient_count, a.accepted, a.rejected, a.error_code)
        for a in SubmitAttempt.objects.filter(message=message)
    }
    assert attempts == {"beta": (2, 2, 0, ""), "gamma": (1, 1, 0, ""), "alpha": (1, 1, 0, "")}
    assert all(a.latency_ms >= 0 for a in SubmitAttempt.objects.all())


@pytest.mark.django_db
def test_a_carrier_that_is_down_fails_over_to_the_next_on_the_route(alice: Any) -> None:
    route("255", "alpha", "beta")
    RecordingCarrier.down["alpha"] = CarrierError("connection refused", code="UNREACHABLE")
    message = send(alice, [VODACOM, AIRTEL])
    report = dispatch.message_dispatch(message_id=message.id)
    assert report.submitted == 2 and report.retry_in is None
    assert accepted_phones("beta") == [VODACOM, AIRTEL]
    assert states(message) == {VODACOM: ("sent", "beta"), AIRTEL: ("sent", "beta")}
    attempts = list(
        SubmitAttempt.objects.filter(message=message)
        .order_by("id")
        .values_list("carrier", "recipient_count", "accepted", "rejected", "error_code")
    )
    assert attempts == [("alpha", 2, 0, 2, "UNREACHABLE"), ("beta", 2, 2, 0, "")]
    alice.refresh_from_db()
    assert alice.balance == Decimal("4980.00")  # charged once, nothing refunded


@pytest.mark.django_db
def test_a_temporary_rejection_moves_only_that_recipient_to_the_next_carrier(alice: Any) -> None:
    route("255", "alpha", "beta")
    RecordingCarrier.refuse["alpha"] = {AIRTEL: False}
    message = send(alice, [VODACOM, AIRTEL])
    dispatch.message_dispatch(message_id=message.id)
    assert accepted_phones("alpha") == [VODACOM]
    assert accepted_phones("beta") == [AIRTEL]
    assert states(message) == {VODACOM: ("sent", "alpha"), AIRTEL: ("sent", "beta")}
    alpha = SubmitAttempt.objects.get(message=message, carrier="alpha")
    assert (alpha.accepted, alpha.rejected, alpha.error_code) == (1, 1, "THROTTLED")


@pytest.mark.django_db
def test_a_permanent_rejection_fails_and_refunds_without_failing_over(alice: Any) -> None:
    route("255", "alpha", "beta")
    RecordingCarrier.refuse["alpha"] = {AIRTEL: True}
    message = send(alice, [VODACOM, AIRTEL])
    dispatch.message_dispatch(message_id=message.id)
    assert accepted_phones("beta") == []
    failed = Recipient.objects.get(message=message, phone=AIRTEL)
    assert (failed.status, failed.error_code, failed.carrier) == ("failed", "INVALID_DEST", "alpha")
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")


@pytest.mark.django_db
def test_a_carrier_missing_from_settings_is_passed_over(alice: Any) -> None:
    route("255", "retired", "beta")
    message = send(alice, [VODACOM])
    dispatch.message_dispatch(message_id=message.id)
    assert states(message) == {VODACOM: ("sent", "beta")}
    attempt = SubmitAttempt.objects.get(message=message, carrier="retired")
    assert (attempt.accepted, attempt.error_code) == (0, "CARRIER_UNAVAILABLE")


@pytest.mark.django_db
def test_when_every_carrier_fails_for_now_the_recipients_are_requeued_and_retried(
    alice: Any,
) -> None:
    route("255", "alpha", "beta")
    RecordingCarrier.down["alpha"] = CarrierError("timeout")
    RecordingCarrier.down["beta"] = CarrierError("HTTP 503", code="HTTP_503")
    message = send(alice, [VODACOM, AIRTEL])
    with pytest.raises(Retry):
        dispatch_message.apply(args=(message.id,))
    assert states(message) == {VODACOM: ("queued", ""), AIRTEL: ("queued", "")}
    assert SubmitAttempt.objects.filter(message=message).count() == 2
    RecordingCarrier.down.clear()
    assert dispatch.message_dispatch(message_id=message.id).submitted == 2
    assert states(message) == {VODACOM: ("sent", "alpha"), AIRTEL: ("sent", "alpha")}
    alice.refresh_from_db()
    assert alice.balance == Decimal("4980.00")


@pytest.mark.django_db
def test_failover_never_submits_a_recipient_twice(alice: Any, settings: Any) -> None:
    settings.MIFUMO_DISPATCH_BATCH = 7
    route("255", "alpha", "beta", "gamma")
    phones = [f"+2557540{n:05d}" for n in range(40)]
    RecordingCarrier.refuse["alpha"] = dict.fromkeys(phones[::2], False)
    RecordingCarrier.refuse["beta"] = dict.fromkeys(phones[::4], False)
    message = send(alice, phones)
    assert dispatch.message_dispatch(message_id=message.id).submitted == 40
    everyone = Counter(
        sms.recipient_id for sent in RecordingCarrier.accepted.values() for sms in sent
    )
    assert len(everyone) == 40 and set(everyone.values()) == {1}
    assert accepted_phones("gamma") == sorted(phones[::4])
    assert CarrierMessage.objects.count() == 40
    offered = Counter(carrier for carrier, _ in RecordingCarrier.batches)
    assert offered == {"alpha": 6, "beta": 6, "gamma": 6}  # one batch per carrier per claim


# -- carriers with a process of their own -------------------------------------------------------


@pytest.mark.django_db
def test_recipients_for_a_dedicated_carrier_are_handed_off_not_sent(alice: Any) -> None:
    route("25574", "bind", "beta")
    message = send(alice, [VODACOM, AIRTEL])
    report = dispatch.message_dispatch(message_id=message.id)
    assert report.handed_off == 1 and report.submitted == 1
    assert states(message) == {VODACOM: ("submitting", "bind"), AIRTEL: ("sent", "alpha")}
    assert list(Handoff.objects.values_list("carrier", "recipient__phone")) == [("bind", VODACOM)]
    assert "bind" not in RecordingCarrier.accepted


@pytest.mark.django_db
def test_a_handoff_is_taken_once_submitted_by_its_process_and_failed_over_from_there(
    alice: Any,
) -> None:
    route("255", "bind", "beta")
    message = send(alice, [VODACOM, AIRTEL, TIGO])
    dispatch.message_dispatch(message_id=message.id)
    RecordingCarrier.refuse["bind"] = {AIRTEL: False}
    report = dispatch.handoff_dispatch(carrier="bind", limit=10)
    assert report is not None and report.submitted == 3
    assert dispatch.handoff_dispatch(carrier="bind", limit=10) is None
    assert accepted_phones("bind") == [TIGO, VODACOM]
    assert accepted_phones("beta") == [AIRTEL]
    assert states(message) == {
        VODACOM: ("sent", "bind"),
        AIRTEL: ("sent", "beta"),
        TIGO: ("sent", "bind"),
    }
    assert not Handoff.objects.exists()


@pytest.mark.django_db
def test_a_stopping_process_hands_back_what_it_did_not_send(alice: Any) -> None:
    route("255", "bind")
    message = send(alice, [VODACOM, AIRTEL])
    dispatch.message_dispatch(message_id=message.id)
    report = dispatch.handoff_dispatch(carrier="bind", limit=10, stop=lambda: True)
    assert report is not None and report.submitted == 0 and report.handed_off == 2
    assert Handoff.objects.count() == 2
    assert dispatch.handoff_dispatch(carrier="bind", limit=10).submitted == 2  # type: ignore[union-attr]


@pytest.mark.django_db
def test_a_handoff_whose_recipient_moved_on_is_dropped(alice: Any) -> None:
    route("255", "bind")
    message = send(alice, [VODACOM])
    dispatch.message_dispatch(message_id=message.id)
    Recipient.objects.update(status="sent", carrier="beta")
    assert dispatch.handoff_take(carrier="bind", limit=10)[0] == []
    assert not Handoff.objects.exists()


@pytest.mark.django_db
def test_the_sweep_reroutes_handoffs_of_a_dead_process_but_not_of_a_live_one(
    alice: Any, settings: Any
) -> None:
    route("255", "bind")
    message = send(alice, [VODACOM])
    dispatch.message_dispatch(message_id=message.id)
    later = timezone.now() + timedelta(seconds=settings.MIFUMO_CLAIM_LEASE_SECONDS + 1)
    dispatch.carrier_process_heartbeat(carrier="bind")
    assert dispatch.stuck_messages(now=later) == []
    assert states(message) == {VODACOM: ("submitting", "bind")}
    cache.clear()  # the process stopped beating
    assert dispatch.stuck_messages(now=later) == [message.id]
    assert states(message) == {VODACOM: ("queued", "")}
    assert not Handoff.objects.exists()


# -- admin and checks ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_routes_are_edited_in_the_admin_with_carrier_names_checked(admin_client: Any) -> None:
    url = "/admin/sms/carrierroute/add/"
    form = {"prefix": "25574", "carriers": "gamma, beta", "active": "on", "description": "Voda"}
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content[:2000]
    saved = CarrierRoute.objects.get()
    assert saved.carriers == ["gamma", "beta"]
    assert routing.carriers_for_phone(VODACOM) == ("gamma", "beta")
    bad = admin_client.post(url, {**form, "prefix": "+25578", "carriers": "nope"})
    assert bad.status_code == 200
    assert b"Not in MIFUMO_CARRIERS: nope" in bad.content
    assert b"E.164 digits without +" in bad.content
    listing = admin_client.get("/admin/sms/carrierroute/")
    assert b"gamma -&gt; beta" in listing.content
    assert admin_client.get("/admin/sms/submitattempt/").status_code == 200


def error_ids(messages: list[Any]) -> dict[str, str]:
    return {m.id: m.msg for m in messages}


def test_the_carrier_check_passes_on_the_shipped_configuration() -> None:
    assert check_carriers() == []


def test_the_carrier_check_names_the_exact_setting_to_fix(settings: Any) -> None:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "nobackend": {"HOST": "x"},
        "typo": {"BACKEND": "sms.carriers.smpp.SmppCarier"},
        "smsc": {"BACKEND": "sms.carriers.smpp.SmppCarrier", "HOST": "h", "SYSTEM_ID": "s"},
        "fast": {"BACKEND": BACKEND, "RATE": "lots"},
    }
    settings.MIFUMO_CARRIER = "vodacom"
    found = error_ids(check_carriers())
    assert found["sms.E003"] == "MIFUMO_CARRIERS['nobackend']['BACKEND'] is required"
    assert found["sms.E004"].startswith(
        "MIFUMO_CARRIERS['typo']['BACKEND'] = 'sms.carriers.smpp.SmppCarier' cannot be imported"
    )
    assert "MIFUMO_CARRIERS['smsc']['PORT'] is required" in found["sms.E006"]
    assert (
        found["sms.E008"]
        == "MIFUMO_CARRIERS['fast']['RATE'] = 'lots' must be a positive whole number"
    )
    assert found["sms.E010"] == "settings.MIFUMO_CARRIER = 'vodacom' is not in MIFUMO_CARRIERS"


def test_a_complete_smpp_carrier_passes_without_connecting(settings: Any) -> None:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "smsc": {
            "BACKEND": "sms.carriers.smpp.SmppCarrier",
            "HOST": "192.0.2.1",  # TEST-NET: any connection attempt would hang, not pass
            "PORT": 2775,
            "SYSTEM_ID": "mifumo",
            "PASSWORD": "secret",
        },
    }
    assert check_carriers() == []


@pytest.mark.django_db
def test_the_route_check_names_carriers_that_are_not_configured() -> None:
    route("25574", "beta", "vodacom")
    route("25578", "airtel", active=False)
    assert check_routes() == []  # without database access the check does not look
    found = check_routes(databases=["default"])
    assert [m.id for m in found] == ["sms.E013"]
    assert found[0].msg == (
        "Carrier route +25574 names 'vodacom', which is not in settings.MIFUMO_CARRIERS"
    )


@pytest.mark.django_db
def test_a_personalised_message_keeps_each_recipients_text_through_handoff_and_failover(
    alice: Any,
) -> None:
    from contacts.services import contact_create

    for phone, name in ((VODACOM, "Asha"), (AIRTEL, "Juma"), (TIGO, "Neema")):
        contact_create(account=alice, name=name, phone_number=phone)
    route("255", "bind", "beta")
    message = message_send(
        account=alice, text="Habari {{name}}", recipients=[VODACOM, AIRTEL, TIGO]
    ).message
    dispatch.message_dispatch(message_id=message.id)
    RecordingCarrier.refuse["bind"] = {AIRTEL: False}
    dispatch.handoff_dispatch(carrier="bind", limit=10)
    sent = {
        sms.to: (name, sms.text)
        for name, batch in RecordingCarrier.accepted.items()
        for sms in batch
    }
    assert sent == {
        VODACOM: ("bind", "Habari Asha"),
        AIRTEL: ("beta", "Habari Juma"),
        TIGO: ("bind", "Habari Neema"),
    }
