"""``manage.py run_smpp`` as a real subprocess against the test SMSC (``smsc.py``) and the test
database: it takes what dispatch handed off, submits through its bind, records, and stops
cleanly; connection drops and restarts neither lose nor duplicate a submission."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sms.models import Handoff, Recipient
from sms.services import message_send
from tests.workers import Process, service_env, wait_until

from .smsc import DROP, ESME_ROK, HOLD, Reply, Smsc, Submit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


@pytest.fixture
def smpp_settings(settings: Any, smsc: Smsc) -> Any:
    """This process routes to the SMPP carrier (and so hands off); it never binds."""
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "smpp": {
            "BACKEND": "sms.carriers.smpp.SmppCarrier",
            "HOST": "127.0.0.1",
            "PORT": smsc.port,
            "SYSTEM_ID": "mifumo",
            "PASSWORD": "secret",
        },
    }
    settings.MIFUMO_CARRIER = "smpp"
    return settings


@pytest.fixture
def start_smpp(tmp_path: Path, smsc: Smsc, smpp_settings: Any) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*args: str, name: str | None = None, **env: str) -> Process:
        name = name or f"smpp{len(started)}"
        environment = service_env(
            SMPP_HOST="127.0.0.1",
            SMPP_PORT=str(smsc.port),
            SMPP_SYSTEM_ID="mifumo",
            SMPP_PASSWORD="secret",
            MIFUMO_CARRIER="smpp",
            **env,
        )
        command = [sys.executable, "manage.py", "run_smpp", "--idle", "0.05", *args]
        process = Process(command, environment, tmp_path / f"{name}.log")
        started.append(process)
        process.wait_for("run_smpp ready", timeout=30)
        return process

    yield start
    for process in started:
        process.kill()


def phones(count: int, network: int = 4) -> list[str]:
    return [f"+25575{network}{n:04d}67" for n in range(count)]


def send(account: Any, numbers: list[str], text: str = "Habari") -> str:
    return message_send(account=account, text=text, recipients=numbers).message.id


def statuses(message_id: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for status in Recipient.objects.filter(message_id=message_id).values_list("status", flat=True):
        found[status] = found.get(status, 0) + 1
    return found


def all_sent(message_id: str, count: int) -> Callable[[], bool]:
    return lambda: statuses(message_id) == {"sent": count}


def stop(process: Process, timeout: float = 20) -> int:
    process.popen.send_signal(signal.SIGTERM)
    return process.popen.wait(timeout)


def test_run_smpp_submits_what_dispatch_handed_off_and_stops_cleanly(
    alice: Any, smsc: Smsc, start_smpp: Callable[..., Process]
) -> None:
    process = start_smpp()
    assert smsc.wait_until(lambda: len(smsc.binds) == 1, timeout=10)  # bound before any work
    message_id = send(alice, phones(30))
    wait_until(all_sent(message_id, 30), timeout=30)
    rows = Recipient.objects.filter(message_id=message_id)
    ids = {s.message_id for s in smsc.accepted()}
    assert all(r.carrier == "smpp" and r.carrier_message_id for r in rows)
    assert {r.carrier_message_id.upper() for r in rows} <= ids
    assert set(smsc.accepted_by_destination().values()) == {1}
    assert not Handoff.objects.exists()
    assert stop(process) == 0
    assert smsc.unbinds == 1
    assert "run_smpp stopped: 30 recipients submitted" in process.output()


def test_a_connection_dropped_mid_stream_loses_nothing_and_sends_nothing_twice(
    alice: Any, smsc: Smsc, start_smpp: Callable[..., Process]
) -> None:
    seen = 0

    def drop_the_twelfth(submit: Submit) -> Reply:
        nonlocal seen
        seen += 1
        return DROP if seen == 12 else ESME_ROK

    smsc.policy = drop_the_twelfth
    start_smpp(
        "--batch",
        "50",
        SMPP_WINDOW="5",
    )
    message_id = send(alice, phones(50))
    wait_until(all_sent(message_id, 50), timeout=45)
    assert len(smsc.binds) >= 2  # it reconnected
    by_destination = smsc.accepted_by_destination()
    assert len(by_destination) == 50 and set(by_destination.values()) == {1}
    # The dropped submit reached the SMSC but was never acknowledged: sent again, once.
    assert len(smsc.submits) == 51


def test_held_submits_are_sent_again_on_the_next_bind_when_the_smsc_drops_the_line(
    alice: Any, smsc: Smsc, start_smpp: Callable[..., Process]
) -> None:
    holding = True
    smsc.policy = lambda submit: HOLD if holding else ESME_ROK
    start_smpp(SMPP_WINDOW="5")
    message_id = send(alice, phones(12))
    assert smsc.wait_until(lambda: len(smsc.submits) == 5, timeout=20)  # one full window
    holding = False
    smsc.drop_connections()
    wait_until(all_sent(message_id, 12), timeout=45)
    by_destination = smsc.accepted_by_destination()
    assert len(by_destination) == 12 and set(by_destination.values()) == {1}


def test_sigterm_mid_stream_hands_back_the_rest_and_a_restart_sends_it_once(
    alice: Any, smsc: Smsc, start_smpp: Callable[..., Process]
) -> None:
    # Five a second: the batch takes twelve seconds, so the stop lands mid-stream even when
    # a loaded machine notices the first ten sent late.
    first = start_smpp("--batch", "60", SMPP_RATE="5")
    message_id = send(alice, phones(60))
    wait_until(lambda: statuses(message_id).get("sent", 0) >= 10, timeout=30)
    started = time.monotonic()
    assert stop(first) == 0
    assert time.monotonic() - started < 10  # it did not drain the whole batch first
    sent = statuses(message_id).get("sent", 0)
    assert 10 <= sent < 60
    assert Handoff.objects.count() == 60 - sent
    assert len(smsc.accepted()) == sent
    start_smpp("--batch", "60", name="again")
    wait_until(all_sent(message_id, 60), timeout=30)
    by_destination = smsc.accepted_by_destination()
    assert len(by_destination) == 60 and set(by_destination.values()) == {1}


def test_two_processes_share_one_carrier_without_sending_anyone_twice(
    alice: Any, smsc: Smsc, start_smpp: Callable[..., Process]
) -> None:
    start_smpp("--batch", "10", name="left")
    start_smpp("--batch", "10", name="right")
    message_ids = [send(alice, phones(100, network=network)) for network in (4, 5)]
    for message_id in message_ids:
        wait_until(all_sent(message_id, 100), timeout=45)
    by_destination = smsc.accepted_by_destination()
    assert len(by_destination) == 200 and set(by_destination.values()) == {1}
    sessions = {s.session for s in smsc.accepted()}
    assert len(sessions) == 2  # both processes took a share


def test_unreachable_smsc_fails_over_to_the_next_carrier_on_the_route(
    alice: Any, smsc: Smsc, start_smpp: Callable[..., Process], settings: Any
) -> None:
    from sms.models import CarrierRoute

    CarrierRoute.objects.create(prefix="255", carriers=["smpp", "simulator"])
    smsc.close_listener()
    smsc.drop_connections()
    start_smpp()
    message_id = send(alice, phones(5))
    wait_until(all_sent(message_id, 5), timeout=45)
    assert set(
        Recipient.objects.filter(message_id=message_id).values_list("carrier", flat=True)
    ) == {"simulator"}
    assert not smsc.accepted()


def test_run_smpp_without_smpp_carriers_idles_until_stopped(tmp_path: Path, settings: Any) -> None:
    environment = service_env()
    environment.pop("SMPP_HOST", None)
    process = Process([sys.executable, "manage.py", "run_smpp"], environment, tmp_path / "idle.log")
    try:
        process.wait_for("run_smpp ready: no carriers", timeout=30)
        assert stop(process) == 0
    finally:
        process.kill()


def test_an_unknown_carrier_is_refused_at_start(tmp_path: Path) -> None:
    process = Process(
        [sys.executable, "manage.py", "run_smpp", "--carrier", "vodacom"],
        service_env(),
        tmp_path / "unknown.log",
    )
    try:
        assert process.popen.wait(30) != 0
        assert "not in MIFUMO_CARRIERS: vodacom" in process.output()
    finally:
        process.kill()
