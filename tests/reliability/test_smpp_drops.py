"""The SMSC cutting its binds every few seconds during a stream of sends over SMPP: the API, a
real Celery worker and a real ``manage.py run_smpp`` bound to the test SMSC (``smsc.py``),
which answers each submit_sm after a short latency, refuses binds for a second after each cut
and delivers again the receipts it was never thanked for.

Every recipient ends delivered and is recorded once. The carrier never has more than ``WINDOW``
submit_sm unacknowledged on a bind, so the SMSC never holds more than that unanswered. It sends
again only what the SMSC never acknowledged, so a recipient is submitted twice only when its
first submit_sm was still unacknowledged when the line went down. The SMSC answers in the order
it received, so those are among the last ``WINDOW`` on their connection (with answers in any
order, as timers on a loaded machine fire, an earlier submit can still wait for its answer
while later ones are answered and the window moves on, and the place says nothing). Hence at
most ``WINDOW`` repeats per cut.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest

from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.carriers.smpp import SmppCarrier
from tests.carriers.smsc import ESME_ROK, Smsc, Submit
from tests.reliability.services import (
    BatchSender,
    PostgresCluster,
    RedisServer,
    Stack,
    query,
    scalar,
)
from tests.workers import wait_until

WINDOW = 10  # submit_sm unacknowledged at once on a bind
LATENCY = 0.02  # seconds the SMSC takes to answer a submit_sm
SEND_SECONDS = 25
SEND_INTERVAL = 0.25
PER_SEND = 20  # recipients per API request
BIND_LIFETIME = 2.0
REFUSE_BINDS_FOR = 1.0
# A bind lives BIND_LIFETIME, up to a second more waiting for submits in flight; reconnecting
# takes up to 1.2 s, or 3.6 s when that first bind is refused: at least 4 cuts in 25 s.
MIN_CUTS = 4
FINAL = ("delivered", "failed", "canceled")
RESENT = re.compile(r"SMPP connection lost; (\d+) submits to send again")


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc(
        auto_receipt="DELIVRD", latency=LATENCY, in_order=True, redeliver_receipts=True
    ) as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_binds_cut_during_a_stream_of_sends_lose_nothing_and_repeat_only_unacknowledged(
    services: tuple[Stack, PostgresCluster, RedisServer], smsc: Smsc
) -> None:
    stack, cluster, _redis = services
    smpp = {
        "SMPP_HOST": "127.0.0.1",
        "SMPP_PORT": str(smsc.port),
        "SMPP_SYSTEM_ID": "mifumo",
        "SMPP_PASSWORD": "secret",
        "SMPP_WINDOW": str(WINDOW),
        "MIFUMO_CARRIER": "smpp",
    }
    key = stack.setup_account()
    _, base = stack.web(workers=2, **smpp)
    stack.worker("w1", **smpp)
    carrier = stack.run_smpp("run_smpp", "--idle", "0.05", **smpp)

    sender = BatchSender(base, key, per_send=PER_SEND, interval=SEND_INTERVAL, network="71")
    sender.start()
    until = time.monotonic() + SEND_SECONDS
    cut: set[int] = set()
    while time.monotonic() < until:
        # Each bind lives BIND_LIFETIME seconds, then the SMSC cuts it, with submits in flight
        # if there are any within the next second.
        if smsc.wait_until(
            lambda: bool(set(smsc.bound_sessions()) - cut), until - time.monotonic()
        ):
            time.sleep(BIND_LIFETIME)
            smsc.wait_until(lambda: smsc.in_flight() > 0, timeout=1.0)
            cut.update(smsc.outage(refuse_binds_for=REFUSE_BINDS_FOR))
    sender.done.set()
    sender.join(30)
    last_send = time.monotonic()

    assert all(reply.status == 200 for _, reply in sender.replies), [
        (reply.status, reply.body[:200]) for _, reply in sender.replies if reply.status != 200
    ]
    phones = [phone for batch, _ in sender.replies for phone in batch]
    total = len(phones)

    def final() -> bool:
        return sum(n for status, n in counts(cluster.url).items() if status in FINAL) == total

    try:
        wait_until(final, timeout=120, interval=0.5)
    except AssertionError:
        raise AssertionError(f"not all final: {counts(cluster.url)}\n{stack.logs()}") from None
    settled = time.monotonic() - last_send
    # Every receipt the SMSC sent, on a bind that was cut or not, was acknowledged in the end.
    assert smsc.wait_until(lambda: smsc.receipts_owed() == 0, timeout=15), smsc.receipts_owed()

    # Nothing lost: every recipient stored, delivered, recorded once, nothing left behind.
    assert scalar(cluster.url, "SELECT count(*) FROM sms_recipient") == total
    assert counts(cluster.url) == {"delivered": total}
    assert scalar(cluster.url, "SELECT count(*) FROM sms_handoff") == 0
    recorded = dict(
        query(
            cluster.url,
            "SELECT r.phone, c.carrier_message_id FROM sms_recipient r "
            "JOIN sms_carriermessage c ON c.recipient_id = r.id",
        )
    )
    assert len(recorded) == total
    assert scalar(cluster.url, "SELECT count(*) FROM sms_carriermessage") == total

    # What the SMSC saw: never more unanswered than the window, every recipient, each repeat
    # one left unacknowledged by a cut.
    assert max(smsc.most_unanswered.values()) <= WINDOW, smsc.most_unanswered
    cuts = [cut for cut in smsc.outages if cut]
    cut_sessions = {session for cut in cuts for session in cut}
    by_session = smsc.submits_by_session()
    place = {
        id(submit): (index, len(submits))
        for submits in by_session.values()
        for index, submit in enumerate(submits)
    }
    by_phone: dict[str, list[Submit]] = defaultdict(list)
    for submits in by_session.values():
        for submit in submits:
            by_phone[f"+{submit.destination_addr}"].append(submit)
    assert set(by_phone) == set(phones)
    for phone, submits in by_phone.items():
        submits.sort(key=lambda s: s.received_at)
        last = submits[-1]
        assert last.status == ESME_ROK and last.message_id, (phone, submits)
        assert recorded[phone] == last.message_id.lower(), (phone, recorded[phone], submits)
        for earlier in submits[:-1]:
            index, count = place[id(earlier)]
            assert earlier.session in cut_sessions, (phone, earlier)
            assert count - index <= WINDOW, (phone, earlier.session, index, count)

    repeats = sum(len(submits) - 1 for submits in by_phone.values())
    twice = sum(1 for submits in by_phone.values() if len(submits) > 1)
    resent = sum(int(n) for n in RESENT.findall(carrier.output()))
    claimed_again = scalar(cluster.url, "SELECT count(*) FROM sms_recipient WHERE attempts > 1")
    print(
        f"\nsmpp drops: {total} recipients in {len(sender.replies)} sends over "
        f"{SEND_SECONDS}s; {len(cuts)} cuts of a bound session ({len(smsc.outages)} outages), "
        f"{smsc.refused_binds} binds refused, {len(smsc.binds)} binds; "
        f"{sum(len(s) for s in by_session.values())} submit_sm; {twice} recipients submitted "
        f"more than once, {repeats} repeats (bound {WINDOW} x {len(cuts)} = "
        f"{WINDOW * len(cuts)}); {resent} submits the carrier sent again; "
        f"{claimed_again} claimed again by dispatch; {smsc.receipts_redelivered} receipts "
        f"redelivered; all delivered {settled:.1f}s after the last send"
    )
    assert len(cuts) >= MIN_CUTS
    assert repeats <= resent <= WINDOW * len(cuts)
    assert all(int(n) <= WINDOW for n in RESENT.findall(carrier.output()))


@pytest.mark.timeout(30)
def test_receipts_that_arrive_behind_the_bind_response_are_taken_and_answered() -> None:
    """An SMSC empties its store of receipts the moment a bind succeeds; those that reach the
    carrier in the same read as the bind response are handled like any other."""
    received: list[DeliveryReceipt] = []
    with Smsc(redeliver_receipts=True) as smsc:
        smsc.hold_receipt("A0000001", "DELIVRD")
        smsc.hold_receipt("A0000002", "UNDELIV")
        carrier = SmppCarrier(
            name="smsc-test",
            options={
                "HOST": "127.0.0.1",
                "PORT": smsc.port,
                "SYSTEM_ID": "mifumo",
                "PASSWORD": "secret",
                "SUBMIT_TIMEOUT": 2,
            },
            receipt_sink=received.extend,
        )
        try:
            carrier.open()
            answered = smsc.wait_until(lambda: smsc.receipts_owed() == 0, timeout=5)
        finally:
            carrier.close()
    assert answered, "the receipts that came with the bind response were never answered"
    assert sorted((r.carrier_message_id, r.status) for r in received) == [
        ("a0000001", DeliveryStatus.DELIVERED),
        ("a0000002", DeliveryStatus.UNDELIVERABLE),
    ]
    assert set(smsc.deliver_responses.values()) == {ESME_ROK}


def counts(url: str) -> dict[str, int]:
    return dict(query(url, "SELECT status, count(*) FROM sms_recipient GROUP BY status"))
