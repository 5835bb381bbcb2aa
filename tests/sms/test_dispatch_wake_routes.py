"""The cross-message dispatcher over carrier routes (the carriers of tests/sms/test_routing.py):
handoffs to a carrier's own process, and recipients that every carrier of their route turned
away for now, whether from a worker or from that process."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from django.conf import settings

from sms import dispatch
from sms.carriers.base import CarrierError
from sms.models import Handoff, Recipient
from tests.sms.test_routing import (  # noqa: F401 - carriers: the module's autouse fixture
    AIRTEL,
    VODACOM,
    RecordingCarrier,
    accepted_phones,
    carriers,
    route,
    send,
    states,
)


def delayed_runs() -> list[str]:
    """The tasks waiting on the broker's dispatch queue that carry a due time."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    bodies: list[bytes] = client.lrange("dispatch", 0, -1)  # type: ignore[assignment]
    headers = [json.loads(body)["headers"] for body in bodies]
    return [h["task"] for h in headers if h.get("eta")]


@pytest.mark.django_db
def test_messages_on_different_routes_share_a_batch_and_fail_over(alice: Any) -> None:
    route("25574", "alpha", "beta")
    route("25578", "gamma")
    RecordingCarrier.down["alpha"] = CarrierError("timeout")
    first = send(alice, [VODACOM])
    second = send(alice, [AIRTEL])
    report = dispatch.queued_dispatch()
    assert report.submitted == 2
    assert states(first) == {VODACOM: ("sent", "beta")}
    assert states(second) == {AIRTEL: ("sent", "gamma")}


@pytest.mark.django_db
def test_recipients_for_a_carriers_own_process_are_handed_off(alice: Any) -> None:
    route("255", "bind", "beta")
    message = send(alice, [VODACOM, AIRTEL])
    report = dispatch.queued_dispatch()
    assert report.handed_off == 2 and report.submitted == 0
    assert Handoff.objects.count() == 2
    assert dispatch.handoff_dispatch(carrier="bind", limit=10) is not None
    assert accepted_phones("bind") == sorted([VODACOM, AIRTEL])
    assert {status for status, _ in states(message).values()} == {"sent"}


@pytest.mark.django_db
def test_a_carriers_own_process_backs_off_what_every_carrier_refused_for_now(
    alice: Any, celery_worker_factory: Any
) -> None:
    route("255", "bind", "beta")
    message = send(alice, [VODACOM])
    dispatch.queued_dispatch()
    RecordingCarrier.down["bind"] = CarrierError("timeout")
    RecordingCarrier.down["beta"] = CarrierError("HTTP 503", code="HTTP_503")
    report = dispatch.handoff_dispatch(carrier="bind", limit=10)
    assert report is not None and report.requeued == 1
    row = Recipient.objects.get(message=message)
    assert row.status == "queued" and row.not_before == report.retry_at
    # One run of the dispatcher queued for when it is due; not claimed before then.
    assert delayed_runs() == ["sms.tasks.dispatch_queued"]
    assert dispatch.claim_queued(10) == []
