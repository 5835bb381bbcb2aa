"""SMPP 3.4 carrier: one transceiver bind to an SMSC, kept open, with a window of submits.

Threads, per open carrier:

* the caller of ``send_messages`` drives its own batch: it puts submit_sm PDUs on the wire
  while fewer than the window are unacknowledged, then waits on a condition variable; given
  ``on_accepted``, it also hands over the recipients whose parts are all acknowledged, at
  most ``FLUSH_EVERY`` (50 ms) after the last acknowledgement, while the rest is in flight;
* one *session* thread owns the socket's read side: it correlates submit_sm_resp to the
  waiting part by sequence number, answers enquire_link and unbind, sends enquire_link when the
  link is idle, aborts a session whose SMSC stops answering, and reconnects with exponential
  backoff after the connection drops;
* one *receipt* thread (``receipts.ReceiptWorker``) parses deliver_sm, hands receipts to the
  sink in batches, and only then answers deliver_sm_resp, so a receipt the sink could not take
  is redelivered by the SMSC.

Pacing (``session.Pacing``): with RATE, submits leave evenly spaced, kept from batch to batch
(``paces_itself`` tells the dispatcher not to cap batches per second too). ESME_RTHROTTLED and
ESME_RMSGQFUL pause the bind and halve its window, and the part goes again without counting as
a new attempt; a part still refused after THROTTLE_RETRIES is handed back as a temporary
rejection.

Every write goes through one lock per session. Parts whose submit_sm_resp never arrived when a
session dies are sent again on the next session; acknowledged parts never are. The options are
listed in ``config``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.utils.module_loading import import_string

from sms.carriers.base import AcceptedListener, BaseCarrier, CarrierError, OutboundSms, SubmitResult
from sms.carriers.smpp.codec import (
    BIND_TRANSCEIVER_RESP,
    CREDENTIAL_STATUSES,
    DATA_SM,
    DELIVER_SM,
    DELIVERY_RESPONSES,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RX_T_APPN,
    GENERIC_NACK,
    HEADER,
    RESPONSE_BIT,
    SUBMIT_SM_RESP,
    TEMPORARY_STATUSES,
    UNBIND,
    UNBIND_RESP,
    DeliverSm,
    ProtocolError,
    encode_pdu,
    status_code,
    status_message,
    submitted_message_id,
    with_sequence,
)
from sms.carriers.smpp.config import SmppConfig
from sms.carriers.smpp.receipts import ReceiptWorker, normalise_message_id
from sms.carriers.smpp.session import Pacing, Session
from sms.carriers.smpp.submissions import Batch, Job, Part, batch_of, build_job

logger = logging.getLogger(__name__)

# Stores messages from phones (mobile-originated): decoding and reassembly live there.
INBOUND_HANDLER = "sms.carriers.smpp.inbound.store_inbound"

READ_TICK = 0.25  # how often the session thread looks at timers while the link is quiet
UNBIND_GRACE = 1.0  # an SMSC that never answers unbind must not hold up shutdown
FLUSH_EVERY = 0.05  # the longest accepted recipients wait to be handed to ``on_accepted``


class SmppCarrier(BaseCarrier):
    carrier_name = "smpp"
    runs_in_own_process = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._config: SmppConfig | None = None
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._lifecycle = threading.Lock()
        self._closing = threading.Event()
        self._session: Session | None = None
        self._supervisor: threading.Thread | None = None
        self._receipt_worker: ReceiptWorker | None = None
        self._bind_error: CarrierError | None = None
        self._reference = random.randrange(0x10000)
        self._pacing: Pacing | None = None

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's socket is here but none of its threads are. Close
        only this process's copy of the socket (a shutdown would cut the parent's session)
        and start afresh; the next batch binds a session of the child's own."""
        session = self._session
        if session is not None:
            with contextlib.suppress(OSError):
                session.sock.close()
        self._reset()

    @property
    def config(self) -> SmppConfig:
        if self._config is None:
            self._config = SmppConfig.from_carrier(self)
        return self._config

    @property
    def pacing(self) -> Pacing:
        if self._pacing is None:
            self._pacing = Pacing(self.config)
        return self._pacing

    @property
    def paces_itself(self) -> bool:
        return self.config.rate > 0

    @property
    def is_bound(self) -> bool:
        session = self._session
        return session is not None and session.alive

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        with self._lifecycle:
            if self._supervisor is not None:
                return
            # A fresh event per opening: a session thread that outlived the last close() keeps
            # the old, set one and cannot be revived by this opening.
            self._closing = closing = threading.Event()
            session = self._connect()
            self._receipt_worker = ReceiptWorker(self)
            with self._lock:
                self._session = session
            self._supervisor = threading.Thread(
                target=self._supervise,
                args=(session, closing),
                name=f"smpp-{self.name}",
                daemon=True,
            )
            self._supervisor.start()

    def close(self) -> None:
        with self._lifecycle:
            supervisor = self._supervisor
            if supervisor is None:
                return
            self._closing.set()
            with self._changed:
                self._changed.notify_all()
            session = self._session
            if session is not None and session.alive:
                self._drain(session)
            if self._receipt_worker is not None:
                self._receipt_worker.stop()
            if session is not None and session.alive:
                self._unbind(session)
            supervisor.join(timeout=self.config.submit_timeout)
            self._supervisor = None
            self._receipt_worker = None
            self._session = None

    def _drain(self, session: Session) -> None:
        """Give submits already on the wire a moment to be acknowledged."""
        deadline = time.monotonic() + min(self.config.submit_timeout, 5.0)
        with self._changed:
            while session.pending and session.alive and time.monotonic() < deadline:
                self._changed.wait(READ_TICK)

    def _unbind(self, session: Session) -> None:
        if session.request("unbind"):
            session.ended.wait(min(self.config.submit_timeout, UNBIND_GRACE))
        session.abort("closed")

    # -- connecting ------------------------------------------------------------------------

    def _connect(self) -> Session:
        config = self.config
        try:
            sock = socket.create_connection(
                (config.host, config.port), timeout=config.submit_timeout
            )
        except OSError as exc:
            raise CarrierError(
                f"cannot reach SMSC {config.host}:{config.port}: {exc}",
                permanent=False,
                code="SMPP_UNREACHABLE",
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        session = Session(sock)
        try:
            self._bind(session)
        except BaseException:
            session.close()
            raise
        return session

    def _bind(self, session: Session) -> None:
        config = self.config
        sequence = session.next_sequence()
        bind = encode_pdu(
            "bind_transceiver",
            sequence,
            system_id=config.system_id,
            password=config.password,
            system_type=config.system_type,
        )
        if not session.send(bind):
            raise CarrierError("SMSC closed the connection before bind", code="SMPP_BIND")
        status = self._await_bind_response(session, sequence)
        if status != ESME_ROK:
            raise CarrierError(
                f"bind_transceiver rejected: {status_message(status)}",
                permanent=status in CREDENTIAL_STATUSES,
                code=status_code(status),
            )
        logger.info("bound to SMSC %s:%s as %s", config.host, config.port, config.system_id)

    def _await_bind_response(self, session: Session, sequence: int) -> int:
        deadline = time.monotonic() + self.config.submit_timeout
        while time.monotonic() < deadline:
            try:
                frames = session.read(READ_TICK)
            except ProtocolError as exc:
                raise CarrierError(
                    f"SMSC sent a malformed PDU during bind: {exc}", code="SMPP_BIND"
                ) from exc
            if frames is None:
                raise CarrierError("SMSC closed the connection during bind", code="SMPP_BIND")
            for index, frame in enumerate(frames):
                _, command, status, seq = HEADER.unpack_from(frame)
                if seq == sequence and command in (BIND_TRANSCEIVER_RESP, GENERIC_NACK):
                    session.keep_unread(frames[index + 1 :])
                    return int(status)
                if command == ENQUIRE_LINK:
                    session.respond("enquire_link_resp", seq)
        raise CarrierError("no bind_transceiver_resp from SMSC", code="SMPP_BIND_TIMEOUT")

    def _supervise(self, session: Session | None, closing: threading.Event) -> None:
        while session is not None:
            self._serve(session)
            self._session_lost(session)
            session = self._reconnect(closing)

    def _reconnect(self, closing: threading.Event) -> Session | None:
        delay, maximum = self.config.reconnect_backoff
        while not closing.wait(delay * random.uniform(0.8, 1.2)):
            try:
                session = self._connect()
            except CarrierError as exc:
                logger.warning("SMPP reconnect to %s failed: %s", self.name, exc)
                with self._changed:
                    self._bind_error = exc
                delay = min(delay * 2, maximum)
                continue
            except Exception:
                logger.exception("SMPP reconnect to %s failed", self.name)
                delay = min(delay * 2, maximum)
                continue
            with self._changed:
                if closing.is_set():
                    session.close()
                    return None
                self._session = session
                self._bind_error = None
                self._changed.notify_all()
            return session
        return None

    def _session_lost(self, session: Session) -> None:
        session.close()
        with self._changed:
            if self._session is session:
                self._session = None
            unacknowledged = list(session.pending.values())
            session.pending.clear()
            for part in unacknowledged:
                self._resubmit(part)
            self._changed.notify_all()
        if unacknowledged:
            logger.warning("SMPP connection lost; %d submits to send again", len(unacknowledged))

    def _resubmit(self, part: Part) -> None:
        batch = batch_of(part)
        part.resubmits += 1
        if part.resubmits > self.config.max_resubmits:
            part.error = ("SMPP_CONNECTION_LOST", "connection lost before acknowledgement", False)
            batch.settle()
        else:
            batch.todo.appendleft(part)

    # -- the session thread --------------------------------------------------------------

    def _serve(self, session: Session) -> None:
        try:
            self._read_until_closed(session)
        except Exception:
            # Never leave senders waiting on a session nobody reads: end it, reconnect.
            logger.exception("SMPP session thread failed")
            session.abort("internal error")
        finally:
            session.ended.set()

    def _read_until_closed(self, session: Session) -> None:
        while session.alive:
            try:
                frames = session.read(READ_TICK)
            except ProtocolError as exc:
                session.abort(str(exc))
                break
            if frames is None:
                session.abort("closed" if self._closing.is_set() else "connection closed by SMSC")
                break
            for frame in frames:
                self._dispatch(session, frame)
            self._check_timers(session)
        # Ended from elsewhere (a write failed as the SMSC went): settle the answers it sent
        # before it went, so a submit it acknowledged is not sent again on the next session.
        for frame in session.read_received():
            if HEADER.unpack_from(frame)[1] in (SUBMIT_SM_RESP, GENERIC_NACK):
                self._dispatch(session, frame)

    def _dispatch(self, session: Session, frame: bytes) -> None:
        _, command, status, sequence = HEADER.unpack_from(frame)
        if command == SUBMIT_SM_RESP:
            self._on_submit_resp(session, sequence, status, frame)
        elif command in (DELIVER_SM, DATA_SM):
            worker = self._receipt_worker
            if worker is None:  # closing: let the SMSC deliver it again next time
                session.respond(DELIVERY_RESPONSES[command], sequence, ESME_RX_T_APPN)
            else:
                worker.put(session, sequence, frame[16:], command)
        elif command == ENQUIRE_LINK:
            session.respond("enquire_link_resp", sequence)
        elif command == ENQUIRE_LINK_RESP:
            session.enquire_sent_at = None
        elif command == UNBIND:
            session.respond("unbind_resp", sequence)
            session.abort("SMSC unbound")
        elif command == UNBIND_RESP:
            session.ended.set()
        elif command == GENERIC_NACK:
            self._on_submit_resp(session, sequence, status or ESME_RINVCMDID, None)
        elif not command & RESPONSE_BIT:
            session.respond("generic_nack", sequence, ESME_RINVCMDID)

    def _on_submit_resp(
        self, session: Session, sequence: int, status: int, frame: bytes | None
    ) -> None:
        message_id = ""
        if frame is not None and status == ESME_ROK:
            message_id = submitted_message_id(frame)
        with self._changed:
            part = session.pending.pop(sequence, None)
            if part is not None:
                self._settle(part, status, message_id)
            self._changed.notify_all()

    def _settle(self, part: Part, status: int, message_id: str) -> None:
        batch = batch_of(part)
        config = self.config
        if status == ESME_ROK:
            self.pacing.accepted()
            part.message_id = message_id
            part.receipt_key = normalise_message_id(message_id, radix=config.submit_id_radix)
            part.accepted_at = datetime.now(UTC)
            if batch.listener is not None and all(p.accepted_at for p in part.job.parts):
                batch.accepted.append(part.job)
        elif status in TEMPORARY_STATUSES and part.throttled < config.throttle_retries:
            part.throttled += 1
            batch.retry_at(self.pacing.throttled(part.sent_at, time.monotonic()), part)
            return
        elif status in TEMPORARY_STATUSES:
            retries = f" after {part.throttled} retries"
            part.error = (status_code(status), status_message(status) + retries, False)
        else:
            part.error = (status_code(status), status_message(status), True)
        batch.settle()

    def _check_timers(self, session: Session) -> None:
        config = self.config
        now = time.monotonic()
        if session.enquire_sent_at is not None:
            if now - session.enquire_sent_at > config.submit_timeout:
                session.abort("enquire_link unanswered")
                return
        elif now - session.last_rx >= config.enquire_link_interval:
            session.enquire_sent_at = now
            session.request("enquire_link")
        with self._lock:
            oldest = next(iter(session.pending.values()), None)
        if oldest is not None and now - oldest.sent_at > config.submit_timeout:
            session.abort("submit_sm_resp overdue")

    # -- sending ---------------------------------------------------------------------------

    def take_inbound(self, pdus: Sequence[DeliverSm]) -> int:
        """Hand messages from phones to ``INBOUND_HANDLER`` (default: ``inbound.store_inbound``);
        the status to answer their PDUs with."""
        if not pdus:
            return ESME_ROK
        try:
            import_string(self.setting("INBOUND_HANDLER", INBOUND_HANDLER))(self.name, pdus)
        except Exception:
            logger.exception("inbound sink failed; asking the SMSC to redeliver %d", len(pdus))
            return ESME_RX_T_APPN
        return ESME_ROK

    def build_payload(self, batch: Sequence[OutboundSms]) -> list[Job]:
        return [build_job(sms, self.config, self._next_reference) for sms in batch]

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        return self._post(payload, None)

    def post_streaming(
        self, payload: Any, batch: Sequence[OutboundSms], on_accepted: AcceptedListener
    ) -> list[SubmitResult]:
        return self._post(payload, on_accepted)

    def _post(self, jobs: list[Job], listener: AcceptedListener | None) -> list[SubmitResult]:
        parts = [part for job in jobs if job.error is None for part in job.parts]
        if parts:
            self._submit(Batch(parts, listener))
        return [job.result() for job in jobs]

    def _next_reference(self) -> int:
        with self._lock:
            self._reference = (self._reference + 1) % 0x10000
            return self._reference

    def _submit(self, batch: Batch) -> None:
        """Put the batch on the wire; on this (the caller's) thread, hand recipients accepted
        in full to the batch's listener at most ``FLUSH_EVERY`` after their last
        acknowledgement (the rest of the batch stays in flight meanwhile)."""
        unbound_since: float | None = None
        flushed_at = 0.0
        while True:
            ready: list[Job] = []
            with self._changed:
                if batch.unsettled == 0:
                    return
                now = time.monotonic()
                if batch.accepted and now - flushed_at >= FLUSH_EVERY:
                    ready, batch.accepted = batch.accepted, []
                else:
                    session = self._session if self.is_bound else None
                    unbound_since = None if session else (unbound_since or now)
                    step = self._next_step(batch, session, now, unbound_since)
                    if isinstance(step, float):
                        if batch.accepted:
                            step = min(step, max(0.0, flushed_at + FLUSH_EVERY - now))
                        self._changed.wait(step)
                        continue
            if ready:
                assert batch.listener is not None
                flushed_at = now
                batch.listener([job.result() for job in ready])
                continue
            assert not isinstance(step, float)
            session, pdu = step
            # A failed write aborts the session; the session thread then hands the part back.
            session.send(pdu)

    def _next_step(
        self, batch: Batch, session: Session | None, now: float, unbound_since: float | None
    ) -> float | tuple[Session, bytes]:
        """Under the lock: a part to put on the wire, or how long to wait for news."""
        next_retry = batch.promote(now)
        if self._closing.is_set():
            batch.abandon("SMPP_CLOSED", "carrier closed before submission")
            return READ_TICK
        if session is None:
            assert unbound_since is not None
            return self._wait_for_bind(batch, now - unbound_since)
        pacing = self.pacing
        if not batch.todo or len(session.pending) >= int(pacing.window()):
            return _wait_until(now, next_retry)
        hold = pacing.hold(now)
        if hold is not None:
            return _wait_until(now, hold)
        part = batch.todo.popleft()
        sequence = session.next_sequence()
        session.pending[sequence] = part
        part.sent_at = now
        batch.sent_any = True
        return session, with_sequence(part.pdu, sequence)

    def _wait_for_bind(self, batch: Batch, unbound_for: float) -> float:
        timeout = self.config.submit_timeout
        if unbound_for < timeout:
            return min(timeout - unbound_for, READ_TICK)
        error = self._bind_error
        if not batch.sent_any:
            raise error or CarrierError(
                f"not bound to SMSC within {timeout:g}s", permanent=False, code="SMPP_UNBOUND"
            )
        detail = f": {error}" if error else ""
        batch.abandon("SMPP_UNBOUND", f"not bound to SMSC within {timeout:g}s{detail}")
        return READ_TICK


def _wait_until(now: float, when: float | None) -> float:
    if when is None:
        return READ_TICK
    return max(0.0, min(when - now, READ_TICK))
