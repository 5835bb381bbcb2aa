"""The SMPP carrier against a real SMPP server over TCP (see ``smsc.py``); no protocol mocks."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import smpp34

from sms.carriers.base import (
    CarrierError,
    DeliveryReceipt,
    DeliveryStatus,
    OutboundSms,
    SubmitResult,
)
from sms.carriers.smpp import (
    SmppCarrier,
    normalise_message_id,
    parse_receipt_date,
    parse_receipt_text,
    receipt_status,
    source_address,
)
from sms.carriers.smpp.codec import ProtocolError, encode_pdu
from sms.carriers.smpp.session import Session
from sms.carriers.smpp.submissions import Batch
from sms.encoding import encode_gsm7, split_parts

from .smsc import (
    DROP,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RTHROTTLED,
    HOLD,
    TLV_MESSAGE_STATE,
    TLV_NETWORK_ERROR_CODE,
    TLV_RECEIPTED_MESSAGE_ID,
    Reply,
    Sequenced,
    Smsc,
    Submit,
    receipt_text,
)

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
ESME_RINVDSTADR = 0x0B
ESME_RX_T_APPN = 0x64


class Sink:
    """A receipt sink that records what it is given and can be told to fail."""

    def __init__(self) -> None:
        self.receipts: list[DeliveryReceipt] = []
        self.fail = False
        self._changed = threading.Condition()

    def __call__(self, receipts: Sequence[DeliveryReceipt]) -> None:
        if self.fail:
            raise RuntimeError("database unavailable")
        with self._changed:
            self.receipts.extend(receipts)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[DeliveryReceipt]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.receipts) >= count, timeout)
            return list(self.receipts)


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    with Smsc() as server:
        yield server


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def make_carrier(smsc: Smsc, sink: Sink) -> Iterator[Callable[..., SmppCarrier]]:
    carriers: list[SmppCarrier] = []

    def make(**options: Any) -> SmppCarrier:
        settings = {
            "HOST": "127.0.0.1",
            "PORT": smsc.port,
            "SYSTEM_ID": "mifumo",
            "PASSWORD": "secret",
            "SUBMIT_TIMEOUT": 2,
            "RECONNECT_BACKOFF": (0.05, 0.2),
            "THROTTLE_BACKOFF": 0.01,
            **options,
        }
        carrier = SmppCarrier(name="smsc-test", options=settings, receipt_sink=sink)
        carriers.append(carrier)
        return carrier

    yield make
    for carrier in carriers:
        carrier.close()


@pytest.fixture
def carrier(make_carrier: Callable[..., SmppCarrier]) -> SmppCarrier:
    return make_carrier()


_recipient_ids = itertools.count(1)


def sms(text: str = "Habari", to: str = "+255712345678", sender: str = "MIFUMO") -> OutboundSms:
    return OutboundSms(
        recipient_id=next(_recipient_ids), message_id="msg_01", to=to, sender_id=sender, text=text
    )


def recipients(count: int, text: str = "Habari") -> list[OutboundSms]:
    return [sms(text, to=f"+2557120{n:05d}") for n in range(count)]


def send_one(carrier: SmppCarrier, message: OutboundSms) -> SubmitResult:
    [result] = carrier.send_messages([message])
    return result


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- bind ---------------------------------------------------------------------------------


def test_binds_as_transceiver_with_credentials_and_system_type(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(SYSTEM_TYPE="VMA")
    carrier.open()
    assert carrier.is_bound
    [bind] = smsc.binds
    assert (bind.system_id, bind.password, bind.system_type) == ("mifumo", "secret", "VMA")
    assert bind.interface_version == 0x34
    session = carrier._session
    assert session is not None
    assert session.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_bad_password_is_a_permanent_carrier_error(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(PASSWORD="wrong")
    with pytest.raises(CarrierError) as caught:
        carrier.send_messages([sms()])
    assert caught.value.permanent
    assert caught.value.code == "SMPP_0x0000000E"
    assert smsc.binds[0].password == "wrong"
    assert not smsc.submits


def test_unreachable_smsc_is_a_temporary_carrier_error(
    make_carrier: Callable[..., SmppCarrier],
) -> None:
    carrier = make_carrier(PORT=unused_port())
    with pytest.raises(CarrierError) as caught:
        carrier.open()
    assert not caught.value.permanent
    assert caught.value.code == "SMPP_UNREACHABLE"


def test_open_and_close_are_idempotent_and_close_unbinds(carrier: SmppCarrier, smsc: Smsc) -> None:
    carrier.open()
    carrier.open()
    assert len(smsc.binds) == 1
    carrier.close()
    carrier.close()
    assert smsc.wait_until(lambda: smsc.unbinds == 1)
    assert not carrier.is_bound
    assert send_one(carrier, sms()).accepted  # reopens on demand
    assert len(smsc.binds) == 2


def test_enquire_link_is_sent_when_idle_and_answered_when_asked(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(ENQUIRE_LINK_INTERVAL=0.2)
    carrier.open()
    assert smsc.wait_until(lambda: smsc.enquire_links >= 2, timeout=3)
    smsc.enquire_link()
    assert smsc.wait_until(lambda: smsc.enquire_link_responses == 1)
    assert len(smsc.binds) == 1  # keep-alive did not cost the session


def test_a_forked_child_binds_its_own_session(carrier: SmppCarrier, smsc: Smsc) -> None:
    carrier.open()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 2
        try:
            code = 0 if send_one(carrier, sms(to="+255712000077")).accepted else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert send_one(carrier, sms()).accepted  # the parent's session was left alone
    assert len(smsc.binds) == 2
    assert smsc.accepted_by_destination() == {"255712000077": 1, "255712345678": 1}


# -- submit_sm ------------------------------------------------------------------------------


def test_single_gsm7_submit_sends_unpacked_septets_with_data_coding_0(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    result = send_one(carrier, sms("Habari {Amina}, bei ni €5 @ Dar_es_Salaam"))
    [submit] = smsc.submits
    assert submit.data_coding == 0x00
    assert submit.esm_class == 0x00
    assert submit.short_message == (
        b"Habari \x1b\x28Amina\x1b\x29, bei ni \x1b\x655 \x00 Dar\x11es\x11Salaam"
    )
    assert submit.pdu.registered_delivery == 1
    assert submit.destination_addr == "255712345678"
    assert (submit.pdu.dest_addr_ton, submit.pdu.dest_addr_npi) == (1, 1)
    assert (submit.pdu.source_addr, submit.pdu.source_addr_ton, submit.pdu.source_addr_npi) == (
        "MIFUMO",
        5,
        0,
    )
    assert not submit.tlvs
    assert submit.message_id is not None
    assert result == SubmitResult.ok(
        sms_of(result),
        submit.message_id,  # verbatim, as the SMSC wrote it
        receipt_keys=[normalise_message_id(submit.message_id)],
        accepted_at=result.accepted_at,
    )
    assert result.accepted_at is not None


def sms_of(result: SubmitResult) -> OutboundSms:
    """A stand-in carrying only the recipient id, to build expected results."""
    return OutboundSms(result.recipient_id, "", "", "", "")


def test_numeric_sender_is_international_and_receipts_can_be_turned_off(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(REGISTERED_DELIVERY=False)
    assert send_one(carrier, sms(sender="+255222110000")).accepted
    [submit] = smsc.submits
    assert (submit.pdu.source_addr, submit.pdu.source_addr_ton, submit.pdu.source_addr_npi) == (
        "255222110000",
        1,
        1,
    )
    assert submit.pdu.registered_delivery == 0


def test_source_address_rules() -> None:
    assert source_address("MIFUMO") == ("MIFUMO", 5, 0)
    assert source_address("Info 24") == ("Info 24", 5, 0)
    assert source_address("+255712345678") == ("255712345678", 1, 1)
    assert source_address("15000") == ("15000", 1, 1)


def test_single_ucs2_submit_sends_utf16_with_data_coding_8(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    text = "Karibu 😀 ç"
    assert send_one(carrier, sms(text)).accepted
    [submit] = smsc.submits
    assert submit.data_coding == 0x08
    assert submit.esm_class == 0x00
    assert submit.short_message == text.encode("utf-16-be")
    assert len(submit.short_message) == 2 * 11  # the emoji is a surrogate pair


def assert_one_concatenated_message(parts: list[Submit], text: str) -> int:
    """Checks numbering and reassembly; returns the shared reference."""
    info = [part.segment for part in parts]
    references = {reference for reference, _, _ in info}
    assert len(references) == 1, "every part carries the same reference"
    assert sorted(number for _, _, number in info) == list(range(1, len(parts) + 1))
    assert {total for _, total, _ in info} == {len(parts)}
    ordered = sorted(parts, key=lambda p: p.segment[2])
    assert "".join(part.text for part in ordered) == text
    return references.pop()


def test_multipart_gsm7_submit_carries_udh_with_one_reference(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    text = "Habari za asubuhi, ujumbe huu ni mrefu. " * 9  # 360 septets: 3 parts
    result = send_one(carrier, sms(text))
    parts = smsc.submits
    assert len(parts) == 3
    for part in parts:
        assert part.esm_class == 0x40
        assert part.data_coding == 0x00
        assert part.udh[:3] == b"\x05\x00\x03"  # IE 0x00: 8-bit reference
        assert len(part.payload) <= 153
    assert_one_concatenated_message(parts, text)
    by_number = sorted(parts, key=lambda p: p.segment[2])
    assert result.carrier_message_ids == tuple(p.message_id for p in by_number)
    assert result.match_keys == tuple(normalise_message_id(p.message_id) for p in by_number)


def test_multipart_ucs2_submit_carries_udh_with_one_reference(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    text = "Ujumbe wa majaribio 😀 unaendelea hapa. " * 7  # 280 UTF-16 units: 5 parts
    result = send_one(carrier, sms(text))
    parts = smsc.submits
    assert len(parts) == 5
    for part in parts:
        assert (part.esm_class, part.data_coding) == (0x40, 0x08)
        assert part.udh[:3] == b"\x05\x00\x03"
        assert len(part.payload) <= 134
        part.payload.decode("utf-16-be")  # no surrogate pair was cut in half
    assert_one_concatenated_message(parts, text)
    assert len(result.carrier_message_ids) == 5


def test_multipart_submit_with_sar_tlvs_has_no_udh(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(CONCATENATION="sar")
    text = "€" * 100 + "Kwa heri. " * 10  # 300 septets: 2 parts
    result = send_one(carrier, sms(text))
    parts = smsc.submits
    assert len(parts) == 2
    for part in parts:
        assert part.esm_class == 0x00
        assert part.udh == b""
        assert set(part.tlvs) == {0x020C, 0x020E, 0x020F}
        assert len(part.tlvs[0x020C]) == 2
    assert_one_concatenated_message(parts, text)
    assert len(result.carrier_message_ids) == 2


def test_two_multipart_messages_get_different_references(carrier: SmppCarrier, smsc: Smsc) -> None:
    long_text = "x" * 200
    carrier.send_messages([sms(long_text, to="+255712000001"), sms(long_text, to="+255712000002")])
    references = {
        destination: {p.segment[0] for p in smsc.submits if p.destination_addr == destination}
        for destination in ("255712000001", "255712000002")
    }
    assert all(len(refs) == 1 for refs in references.values())
    assert references["255712000001"] != references["255712000002"]


def test_extension_character_at_a_part_border_is_not_split(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    text = "a" * 152 + "€" + "b" * 160
    send_one(carrier, sms(text))
    parts = sorted(smsc.submits, key=lambda p: p.segment[2])
    assert [p.payload for p in parts] == [encode_gsm7(t) for t in split_parts(text)]
    assert parts[1].payload.startswith(b"\x1b\x65")
    assert not parts[0].payload.endswith(b"\x1b")


def test_window_bounds_outstanding_submits(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(WINDOW=4, SUBMIT_TIMEOUT=10)
    smsc.policy = lambda submit: HOLD
    results: list[SubmitResult] = []
    worker = threading.Thread(target=lambda: results.extend(carrier.send_messages(recipients(10))))
    worker.start()

    def unanswered() -> int:
        return sum(1 for s in smsc.submits if s.status is None)

    most = 0
    while worker.is_alive():
        smsc.wait_until(lambda: unanswered() >= 4 or len(smsc.submits) == 10, timeout=1)
        time.sleep(0.05)  # room for the carrier to overstep the window if it would
        most = max(most, unanswered())
        smsc.release_held()
        worker.join(timeout=0.01)
    assert most == 4
    assert len(results) == 10
    assert all(r.accepted for r in results)


# -- command_status ----------------------------------------------------------------------


def test_throttled_submits_are_retried_until_accepted(carrier: SmppCarrier, smsc: Smsc) -> None:
    smsc.policy = Sequenced([ESME_RTHROTTLED] * 3)
    result = send_one(carrier, sms())
    assert result.accepted
    assert [s.status for s in smsc.submits] == [ESME_RTHROTTLED] * 3 + [ESME_ROK]


@pytest.mark.parametrize("status", [ESME_RTHROTTLED, ESME_RMSGQFUL])
def test_always_throttled_submit_becomes_a_temporary_rejection(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc, status: int
) -> None:
    carrier = make_carrier(THROTTLE_RETRIES=2)
    smsc.policy = lambda submit: status
    result = send_one(carrier, sms())
    assert not result.accepted
    assert not result.permanent
    assert result.error_code == f"SMPP_0x{status:08X}"
    assert len(smsc.submits) == 3  # the first try and two retries


def accepted_rate(smsc: Smsc) -> float:
    """Submits accepted per second, first to last, as the SMSC received them."""
    times = sorted(s.received_at for s in smsc.accepted())
    return (len(times) - 1) / (times[-1] - times[0])


def test_submits_are_paced_at_the_rate_a_throttling_smsc_allows(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    smsc.throttle_rate = 20  # ESME_RTHROTTLED past 20 submits in any second
    carrier = make_carrier(RATE=20, WINDOW=10, THROTTLE_BACKOFF=0.25)
    results = carrier.send_messages(recipients(100))
    assert all(r.accepted for r in results)  # every one, no permanent nor temporary failure
    assert len(smsc.accepted()) == 100
    assert 18 <= accepted_rate(smsc) <= 22, accepted_rate(smsc)
    assert smsc.throttled <= 5  # evenly spaced: the SMSC hardly ever has to refuse one


def test_throttling_without_a_configured_rate_slows_down_instead_of_failing(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    smsc.throttle_rate = 50
    carrier = make_carrier(WINDOW=20, THROTTLE_BACKOFF=0.05)
    results = carrier.send_messages(recipients(200))
    assert all(r.accepted for r in results)
    assert smsc.throttled > 0  # it was refused, and backed off
    assert sorted(smsc.accepted_by_destination().values()) == [1] * 200
    assert accepted_rate(smsc) <= 55


@pytest.mark.parametrize("status", [ESME_RTHROTTLED, ESME_RMSGQFUL])
def test_back_pressure_halves_the_window_and_acceptance_grows_it_back(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc, status: int
) -> None:
    carrier = make_carrier(WINDOW=8)
    smsc.policy = Sequenced([status])
    first = carrier.send_messages(recipients(1))
    assert first[0].accepted
    assert carrier.pacing.window() == 4.25  # halved once, then one acceptance added 1/4
    carrier.send_messages(recipients(60))
    assert carrier.pacing.window() == 8.0


def test_other_errors_are_permanent_rejections_with_readable_messages(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    smsc.policy = lambda submit: ESME_RINVDSTADR
    result = send_one(carrier, sms())
    assert (result.accepted, result.permanent) == (False, True)
    assert result.error_code == "SMPP_0x0000000B"
    assert result.error_message == "Invalid Destination Address (command_status 0x0000000B)"
    assert len(smsc.submits) == 1


def test_a_rejected_part_rejects_its_recipient_only(carrier: SmppCarrier, smsc: Smsc) -> None:
    smsc.policy = Sequenced([ESME_ROK, ESME_RINVDSTADR])  # the second part of the first message
    long_message, short_message = sms("y" * 200), sms("short", to="+255712000009")
    first, second = carrier.send_messages([long_message, short_message])
    assert (first.accepted, first.error_code) == (False, "SMPP_0x0000000B")
    assert second.accepted


# -- connection loss ------------------------------------------------------------------------


def test_connection_drop_mid_window_resubmits_only_unacknowledged(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(WINDOW=10)
    smsc.policy = Sequenced([ESME_ROK] * 5 + [HOLD] * 4 + [DROP])
    batch = recipients(30)
    results = carrier.send_messages(batch)

    destinations = [m.to.lstrip("+") for m in batch]
    assert smsc.accepted_by_destination() == Counter(destinations)  # each exactly once
    assert all(r.accepted for r in results)
    accepted = {s.destination_addr: s.message_id for s in smsc.accepted()}
    assert [r.carrier_message_ids for r in results] == [(accepted[d],) for d in destinations]
    assert len(smsc.binds) == 2
    first_session = [s for s in smsc.submits if s.session == 1]
    acknowledged = {s.destination_addr for s in first_session if s.status == ESME_ROK}
    unacknowledged = {s.destination_addr for s in first_session if s.status is None}
    assert len(acknowledged) == 5
    assert len(unacknowledged) >= 5
    submits_per_destination = Counter(s.destination_addr for s in smsc.submits)
    assert all(submits_per_destination[d] == 1 for d in acknowledged)
    assert all(submits_per_destination[d] == 2 for d in unacknowledged)


def test_smsc_gone_after_drop_gives_temporary_rejections_for_unacknowledged(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(SUBMIT_TIMEOUT=0.5)
    answered = itertools.count(1)

    def accept_three_then_vanish(submit: Submit) -> Reply:
        if next(answered) <= 3:
            return ESME_ROK
        smsc.close_listener()
        return DROP

    smsc.policy = accept_three_then_vanish
    batch = recipients(8)
    results = carrier.send_messages(batch)
    accepted = set(smsc.accepted_by_destination())
    assert len(accepted) == 3
    for message, result in zip(batch, results, strict=True):
        if message.to.lstrip("+") in accepted:
            assert result.accepted
        else:
            assert (result.accepted, result.permanent) == (False, False)
            assert result.error_code == "SMPP_UNBOUND"


class Vanished:
    """One real TCP connection to a peer that answers, then goes with data of ours unread (so
    the kernel resets the connection): what the session thread sees when an SMSC acknowledges a
    submit and goes before that acknowledgement has been read."""

    def __init__(self, *answers: bytes) -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.sock = socket.create_connection(listener.getsockname())
            peer, _ = listener.accept()
        self.session = Session(self.sock)
        for answer in answers:
            peer.sendall(answer)
        self.sock.sendall(b"a submit the SMSC never reads")
        assert peer.recv(1, socket.MSG_PEEK)  # it arrived, unread: closing resets the line
        answered = sum(map(len, answers))
        assert len(self.sock.recv(answered, socket.MSG_PEEK | socket.MSG_WAITALL)) == answered
        peer.close()
        deadline = time.monotonic() + 5
        while self.session.send(b"the next submit") and time.monotonic() < deadline:
            time.sleep(0.01)  # the reset is on its way
        assert not self.session.alive  # a write failed: the session is aborted


def submit_sm_resp(sequence: int, message_id: str, status: int = ESME_ROK) -> bytes:
    return encode_pdu("submit_sm_resp", sequence, status=status, message_id=message_id)


def test_answers_received_before_the_line_was_reset_are_still_read() -> None:
    answers = [submit_sm_resp(7, "abc123"), submit_sm_resp(8, "", ESME_RTHROTTLED)]
    vanished = Vanished(*answers)
    try:
        assert vanished.session.read_received() == answers
        assert vanished.session.read_received() == []
    finally:
        vanished.sock.close()


def test_a_submit_acknowledged_before_a_failed_write_is_not_sent_again(
    carrier: SmppCarrier,
) -> None:
    acknowledged, unanswered = carrier.build_payload([sms(), sms(to="+255712000002")])
    batch = Batch([*acknowledged.parts, *unanswered.parts])
    vanished = Vanished(submit_sm_resp(7, "abc123"))
    session = vanished.session
    session.pending.update({7: acknowledged.parts[0], 8: unanswered.parts[0]})
    batch.todo.clear()
    try:
        carrier._serve(session)  # the session thread's turn, after the write failed
        carrier._session_lost(session)
    finally:
        vanished.sock.close()
    assert acknowledged.result().accepted
    assert acknowledged.result().carrier_message_ids == ("abc123",)
    assert list(batch.todo) == unanswered.parts  # only the unanswered one goes again
    assert batch.unsettled == 1


def test_sound_answers_before_a_malformed_pdu_are_still_read() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sock = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
    answer = submit_sm_resp(7, "abc123")
    with sock, peer:
        session = Session(sock)
        received = answer + (8).to_bytes(4, "big") + bytes(4)  # then a length of 8
        peer.sendall(received)
        assert sock.recv(len(received), socket.MSG_PEEK | socket.MSG_WAITALL) == received
        with pytest.raises(ProtocolError):
            session.read(1.0)
        assert session.read_received() == [answer]


def test_a_malformed_bind_response_is_a_temporary_carrier_error(
    make_carrier: Callable[..., SmppCarrier],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer_garbage() -> None:
            peer, _ = listener.accept()
            with peer:
                peer.recv(1024)
                peer.sendall(bytes(16))  # a command_length of 0
                peer.recv(1024)  # until the carrier hangs up

        server = threading.Thread(target=answer_garbage, daemon=True)
        server.start()
        carrier = make_carrier(PORT=listener.getsockname()[1])
        with pytest.raises(CarrierError) as caught:
            carrier.send_messages([sms()])
        server.join(5)
    assert (caught.value.code, caught.value.permanent) == ("SMPP_BIND", False)
    assert "malformed" in str(caught.value)


def test_unanswered_submit_is_resubmitted_on_a_new_session(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc
) -> None:
    carrier = make_carrier(SUBMIT_TIMEOUT=0.5)
    smsc.policy = lambda submit: HOLD if submit.session == 1 else ESME_ROK
    result = send_one(carrier, sms())
    assert result.accepted
    assert [(s.session, s.status) for s in smsc.submits] == [(1, None), (2, ESME_ROK)]


def test_reconnects_after_the_smsc_drops_an_idle_connection(
    carrier: SmppCarrier, smsc: Smsc
) -> None:
    carrier.open()
    smsc.drop_connections()
    assert smsc.wait_until(lambda: len(smsc.binds) == 2)
    assert send_one(carrier, sms()).accepted
    assert len(smsc.binds) == 2


# -- delivery receipts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stat", "status", "err", "error_code"),
    [
        ("DELIVRD", DeliveryStatus.DELIVERED, "000", None),
        ("UNDELIV", DeliveryStatus.UNDELIVERABLE, "034", "034"),
        ("EXPIRED", DeliveryStatus.EXPIRED, "000", None),
    ],
)
def test_delivery_receipts_reach_the_sink_with_the_submitted_id(
    carrier: SmppCarrier,
    smsc: Smsc,
    sink: Sink,
    stat: str,
    status: DeliveryStatus,
    err: str,
    error_code: str | None,
) -> None:
    result = send_one(carrier, sms())
    [submit] = smsc.submits
    assert submit.message_id is not None
    done = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    sequence = smsc.deliver_receipt(submit.message_id, stat, err=err, done=done)
    [receipt] = sink.wait_for(1)
    assert receipt.carrier == "smsc-test"
    assert receipt.carrier_message_id in result.match_keys
    assert receipt.status == status
    assert receipt.timestamp == done
    assert receipt.error_code == error_code
    assert receipt.raw["stat"] == stat
    assert receipt.raw["id"] == submit.message_id
    assert smsc.wait_until(lambda: smsc.deliver_responses.get(sequence) == ESME_ROK)


def test_decimal_receipt_id_matches_hex_submit_id_with_receipt_id_radix_10(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc, sink: Sink
) -> None:
    carrier = make_carrier(RECEIPT_ID_RADIX=10)
    result = send_one(carrier, sms())
    [submit] = smsc.submits
    assert submit.message_id is not None
    decimal_id = str(int(submit.message_id, 16))
    smsc.deliver_receipt(decimal_id, "DELIVRD")
    [receipt] = sink.wait_for(1)
    assert receipt.carrier_message_id == result.match_keys[0]
    assert receipt.raw["id"] == decimal_id


def test_zero_padded_decimal_receipt_id_matches_without_configuration(
    carrier: SmppCarrier, smsc: Smsc, sink: Sink
) -> None:
    smsc.message_ids = str  # a decimal SMSC: "42" in submit_sm_resp, "0000000042" in receipts
    result = send_one(carrier, sms())
    smsc.deliver_receipt(f"{result.carrier_message_ids[0]:0>10}", "DELIVRD")
    [receipt] = sink.wait_for(1)
    assert receipt.carrier_message_id == result.match_keys[0]


def test_receipt_from_tlvs_alone(carrier: SmppCarrier, smsc: Smsc, sink: Sink) -> None:
    result = send_one(carrier, sms())
    [submit] = smsc.submits
    assert submit.message_id is not None
    smsc.deliver(
        b"",
        tlvs=[
            (TLV_RECEIPTED_MESSAGE_ID, submit.message_id.encode()),  # no NUL, as some SMSCs send
            (TLV_MESSAGE_STATE, b"\x05"),
            (TLV_NETWORK_ERROR_CODE, b"\x03\x00\x22"),
        ],
    )
    [receipt] = sink.wait_for(1)
    assert receipt.carrier_message_id == result.match_keys[0]
    assert receipt.status == DeliveryStatus.UNDELIVERABLE
    assert receipt.error_code == "3:34"
    assert receipt.timestamp.tzinfo is not None


def test_receipt_for_a_middle_part_carries_one_of_that_recipients_part_ids(
    carrier: SmppCarrier, smsc: Smsc, sink: Sink
) -> None:
    result = send_one(carrier, sms("Sehemu " * 60))  # 420 septets: 3 parts
    middle = next(p for p in smsc.submits if p.segment[2] == 2)
    assert middle.message_id is not None
    smsc.deliver_receipt(middle.message_id, "DELIVRD")
    [receipt] = sink.wait_for(1)
    assert len(result.carrier_message_ids) == 3
    assert receipt.carrier_message_id == result.match_keys[1]


def test_receipt_times_are_read_in_the_configured_zone(
    make_carrier: Callable[..., SmppCarrier], smsc: Smsc, sink: Sink
) -> None:
    carrier = make_carrier(RECEIPT_TIMEZONE="Africa/Dar_es_Salaam")
    send_one(carrier, sms())
    [submit] = smsc.submits
    assert submit.message_id is not None
    smsc.deliver(b"id:" + submit.message_id.encode() + b" done date:2611200830 stat:DELIVRD")
    [receipt] = sink.wait_for(1)
    assert receipt.timestamp == datetime(2026, 11, 20, 5, 30, tzinfo=UTC)


def test_sink_failure_asks_the_smsc_to_redeliver(
    carrier: SmppCarrier, smsc: Smsc, sink: Sink
) -> None:
    send_one(carrier, sms())
    [submit] = smsc.submits
    assert submit.message_id is not None
    sink.fail = True
    first = smsc.deliver_receipt(submit.message_id, "DELIVRD")
    assert smsc.wait_until(lambda: first in smsc.deliver_responses)
    assert smsc.deliver_responses[first] == ESME_RX_T_APPN
    sink.fail = False
    second = smsc.deliver_receipt(submit.message_id, "DELIVRD")
    assert smsc.wait_until(lambda: smsc.deliver_responses.get(second) == ESME_ROK)
    assert len(sink.wait_for(1)) == 1


def test_a_garbled_receipt_is_answered_and_ignored(
    carrier: SmppCarrier, smsc: Smsc, sink: Sink
) -> None:
    # Messages from phones (deliver_sm without the receipt bits) are stored: test_smpp_inbound.
    carrier.open()
    garbled = smsc.deliver(receipt_text("A1", "DELIVRD")[:7], esm_class=0x04)  # "id:A1 s"
    assert smsc.wait_until(lambda: garbled in smsc.deliver_responses)
    assert smsc.deliver_responses[garbled] == ESME_ROK
    time.sleep(0.1)
    assert [r.raw.get("stat") for r in sink.receipts] in ([], [None])
    assert all(r.status == DeliveryStatus.UNKNOWN for r in sink.receipts)


# -- pure functions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "radix", "expected"),
    [
        ("A1F", None, "a1f"),
        (b"00A1F\x00", None, "a1f"),
        (" a1f ", 16, "a1f"),
        ("2591", 10, "a1f"),
        ("0000002591", 10, "a1f"),
        ("0000002591", None, "2591"),
        ("0", None, "0"),
        ("000", 10, "0"),
        ("", None, ""),
        (None, None, ""),
        ("msg-7F/2", 16, "msg-7f/2"),  # not a number in the radix: compared as text
        ("6ba7b810-9dad-11d1", None, "6ba7b810-9dad-11d1"),
    ],
)
def test_normalise_message_id(value: str | bytes | None, radix: int | None, expected: str) -> None:
    assert normalise_message_id(value, radix=radix) == expected


def test_receipt_text_parsing_is_case_insensitive_and_tolerant() -> None:
    fields = parse_receipt_text(
        "ID:0a1B SUB:001 DLVRD:001 Submit Date:2611201200 done_date:2611201201 "
        "Stat:UNDELIV Err:034 Text:Habari: id:zz stat:DELIVRD"
    )
    assert fields == {
        "id": "0a1B",
        "sub": "001",
        "dlvrd": "001",
        "submit_date": "2611201200",
        "done_date": "2611201201",
        "stat": "UNDELIV",
        "err": "034",
        "text": "Habari: id:zz stat:DELIVRD",
    }
    assert parse_receipt_text("id:77 stat:DELIVRD") == {"id": "77", "stat": "DELIVRD"}
    assert parse_receipt_text("no receipt here") == {}


@pytest.mark.parametrize(
    ("stat", "state", "expected"),
    [
        ("DELIVRD", None, DeliveryStatus.DELIVERED),
        ("delivrd", None, DeliveryStatus.DELIVERED),
        ("UNDELIV", None, DeliveryStatus.UNDELIVERABLE),
        ("EXPIRED", None, DeliveryStatus.EXPIRED),
        ("REJECTD", None, DeliveryStatus.REJECTED),
        ("ENROUTE", None, DeliveryStatus.ENROUTE),
        ("ACCEPTD", None, DeliveryStatus.ENROUTE),
        ("DELETED", None, DeliveryStatus.UNDELIVERABLE),
        ("UNKNOWN", None, DeliveryStatus.UNKNOWN),
        ("DELIVR", None, DeliveryStatus.UNKNOWN),
        ("", None, DeliveryStatus.UNKNOWN),
        (None, 2, DeliveryStatus.DELIVERED),
        ("DELIVRD", 5, DeliveryStatus.UNDELIVERABLE),  # the TLV is the formal field
        (None, 99, DeliveryStatus.UNKNOWN),
    ],
)
def test_receipt_status_mapping(
    stat: str | None, state: int | None, expected: DeliveryStatus
) -> None:
    assert receipt_status(stat, state) == expected


def test_receipt_dates() -> None:
    assert parse_receipt_date("2611200830") == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert parse_receipt_date("261120083015") == datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC)
    assert parse_receipt_date("2613200830") is None
    assert parse_receipt_date("") is None
    assert parse_receipt_date(None) is None


# -- interoperability and process exit -----------------------------------------------------


@pytest.fixture
def smpp34_server() -> Iterator[tuple[int, list[Any], dict[int, int]]]:
    """smpp34's own server mode: accepts any bind, answers each submit with a hex id and
    a delivery receipt."""
    port = unused_port()
    submits: list[Any] = []
    receipt_statuses: dict[int, int] = {}
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Any:
        server = smpp34.Server(host="127.0.0.1", port=port, system_id="SMPP34")
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(5)

    async def serve() -> None:
        sessions: dict[str, Any] = {}
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                sessions[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                message_id = f"{0xB000 + len(submits):X}"
                submits.append(event)
                event.accept(message_id=message_id)
                response = await sessions[event.session_id].deliver_sm(
                    event.source_addr,
                    receipt_text(message_id, "DELIVRD"),
                    source_addr=event.destination_addr,
                    esm_class=0x04,
                )
                receipt_statuses[len(submits)] = response.command_status

    serving = asyncio.run_coroutine_threadsafe(serve(), loop)
    yield port, submits, receipt_statuses
    serving.cancel()

    async def stop() -> None:
        await server.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def test_interoperates_with_smpp34_server_mode(
    smpp34_server: tuple[int, list[Any], dict[int, int]], sink: Sink
) -> None:
    port, submits, receipt_statuses = smpp34_server
    carrier = SmppCarrier(
        options={"HOST": "127.0.0.1", "PORT": port, "SYSTEM_ID": "a", "PASSWORD": "b"},
        receipt_sink=sink,
    )
    with carrier:
        results = carrier.send_messages([sms("Habari €"), sms("ç" * 80)])
        receipts = sink.wait_for(3)
    assert all(r.accepted for r in results)
    # smpp34 hands submits over concurrently, so their order is not asserted.
    assert sorted((s.data_coding, s.esm_class) for s in submits) == [(0, 0), (8, 0x40), (8, 0x40)]
    gsm = next(s for s in submits if s.data_coding == 0)
    assert gsm.short_message == encode_gsm7("Habari €")
    ids = {i for r in results for i in r.match_keys}
    assert {r.carrier_message_id for r in receipts} == ids == {"b000", "b001", "b002"}
    assert set(receipt_statuses.values()) == {ESME_ROK}


EXIT_SCRIPT = """
from sms.carriers.base import OutboundSms
from sms.carriers.smpp import SmppCarrier

carrier = SmppCarrier(options={{
    "HOST": "127.0.0.1", "PORT": {port}, "SYSTEM_ID": "mifumo", "PASSWORD": "secret",
}})
[result] = carrier.send_messages([OutboundSms(1, "msg_1", "+255712345678", "MIFUMO", "Habari")])
assert result.accepted, result
{ending}
"""


def unbinds_reach(smsc: Smsc, count: int) -> Callable[[], bool]:
    return lambda: smsc.unbinds == count


@pytest.mark.parametrize("ending", ["", "carrier.close()"], ids=["left-open", "closed"])
def test_process_exits_cleanly_after_sending(smsc: Smsc, ending: str) -> None:
    script = textwrap.dedent(EXIT_SCRIPT).format(port=smsc.port, ending=ending)
    for run in range(1, 4):
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert smsc.wait_until(unbinds_reach(smsc, run))
