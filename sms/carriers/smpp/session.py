"""One SMPP connection, and how fast submits may be fed to it.

``Session`` is one TCP connection and its bind: framing of what is read, one lock for every
write, sequence numbers, and ``pending``, the window of submit_sm not acknowledged yet.

``Pacing`` is the bind's speed, kept across sessions and batches. With RATE, submits leave
evenly spaced (a token bucket per bind without bursts). ESME_RTHROTTLED and ESME_RMSGQFUL are
back-pressure, not failures: the bind pauses (backoff doubling with each one in a row, up to
``MAX_THROTTLE_PAUSE``) and the window in use halves; each accepted submit grows it back by one
over its size (additive increase), up to WINDOW.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from typing import Any

from sms.carriers.smpp.codec import ESME_ROK, MAX_PDU_LENGTH, ProtocolError, encode_pdu
from sms.carriers.smpp.config import SmppConfig
from sms.carriers.smpp.submissions import Part

logger = logging.getLogger(__name__)

MAX_THROTTLE_PAUSE = 2.0  # the longest a bind pauses after ESME_RTHROTTLED / ESME_RMSGQFUL


class Session:
    """One TCP connection and bind. ``pending`` (guarded by the carrier's lock) maps sequence
    numbers of unacknowledged submit_sm to their parts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: dict[int, Part] = {}
        self.alive = True
        self.ended = threading.Event()  # unbind answered, or the connection is gone
        self.last_rx = time.monotonic()
        self.enquire_sent_at: float | None = None
        self._write_lock = threading.Lock()
        self._sequence_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._sequence = 0
        self._buffer = bytearray()
        # PDUs that arrived behind the bind response, in the same read: the session thread
        # takes them first (an SMSC often pushes stored receipts the moment a bind succeeds).
        self._unread: list[bytes] = []

    def next_sequence(self) -> int:
        with self._sequence_lock:
            self._sequence = self._sequence % 0x7FFFFFFF + 1
            return self._sequence

    def send(self, data: bytes) -> bool:
        """Write one PDU; False (and the session aborted) when the connection is gone."""
        if not self.alive:
            return False
        try:
            with self._write_lock:
                self.sock.sendall(data)
        except OSError as exc:
            self.abort(f"write failed: {exc}")
            return False
        return True

    def request(self, command: str, **fields: Any) -> bool:
        return self.send(encode_pdu(command, self.next_sequence(), **fields))

    def respond(self, command: str, sequence: int, status: int = ESME_ROK) -> bool:
        return self.send(encode_pdu(command, sequence, status=status))

    def abort(self, reason: str) -> None:
        with self._state_lock:
            was_alive, self.alive = self.alive, False
        if was_alive:
            logger.info("SMPP session ends: %s", reason)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def read(self, timeout: float) -> list[bytes] | None:
        """Complete PDUs received within ``timeout``; None once the connection has ended."""
        if self._unread:
            frames, self._unread = self._unread, []
            return frames
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return []
            chunk = self.sock.recv(65536)
        except (OSError, ValueError):
            return None
        if not chunk:
            return None
        self.last_rx = time.monotonic()
        self._buffer += chunk
        return self._frames()

    def read_received(self) -> list[bytes]:
        """Complete PDUs already received and not read yet, without waiting. A session ended
        by a failed write may still hold answers the SMSC sent before it went: the kernel keeps
        them readable after a reset or a shutdown."""
        while True:
            try:
                ready, _, _ = select.select([self.sock], [], [], 0)
                chunk = self.sock.recv(65536) if ready else b""
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            self._buffer += chunk
        with contextlib.suppress(ProtocolError):
            self._unread.extend(self._frames())
        frames, self._unread = self._unread, []
        return frames

    def keep_unread(self, frames: list[bytes]) -> None:
        """Hand ``frames`` to the next ``read``."""
        self._unread.extend(frames)

    def _frames(self) -> list[bytes]:
        frames: list[bytes] = []
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:4], "big")
            if not 16 <= length <= MAX_PDU_LENGTH:
                # The PDUs before the bad one are sound (an acknowledgement among them must
                # not be lost with the session): the next read hands them over first.
                self._unread.extend(frames)
                raise ProtocolError(f"command_length {length} is out of range")
            if len(self._buffer) < length:
                break
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return frames

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.close()


class Pacing:
    """The window in use, the RATE grid and the pauses the SMSC asked for. Guarded by the
    carrier's lock."""

    def __init__(self, config: SmppConfig) -> None:
        self.config = config
        self.pause_until = 0.0
        self.next_token = 0.0  # when the rate lets the next submit leave
        self.window_now = 0.0  # the window in use (0: not set yet; shrinks under throttling)
        self.throttled_in_a_row = 0
        self.throttle_reacted_at = 0.0  # when the bind last slowed down for the SMSC

    def window(self) -> float:
        """The window in use: WINDOW until throttling shrinks it."""
        return self.window_now or float(self.config.window)

    def accepted(self) -> None:
        self.throttled_in_a_row = 0
        window = self.window()
        self.window_now = min(float(self.config.window), window + 1 / window)

    def throttled(self, sent_at: float, now: float) -> float:
        """A submit sent at ``sent_at`` was refused for now; when it may go again."""
        config = self.config
        # The SMSC asked the whole bind to slow down, not just this part. Once per burst:
        # the other refusals of submits sent before this reaction are the same news.
        if sent_at > self.throttle_reacted_at:
            self.throttle_reacted_at = now
            self.throttled_in_a_row += 1
            self.window_now = max(1.0, self.window() / 2)
            # Paced binds only overstepped by a hair: pause a couple of intervals.
            base = 2 / config.rate if config.rate else config.throttle_backoff
            delay = min(base * 2 ** min(self.throttled_in_a_row - 1, 10), MAX_THROTTLE_PAUSE)
            self.pause_until = max(self.pause_until, now + delay)
        return max(self.pause_until, now)

    def hold(self, now: float) -> float | None:
        """When the next submit may leave, if not now; None lets it leave, and counts it."""
        if now < self.pause_until:
            return self.pause_until
        rate = self.config.rate
        if rate:
            if now < self.next_token:
                return self.next_token
            # On a grid 1/RATE apart, kept from batch to batch, so waits that overslept are
            # made up; nothing saved up beyond one interval, so no burst for the SMSC to
            # refuse (an SMSC counting any sliding second refuses whatever exceeds RATE in
            # it, so a gap is never made up: the bind must not idle between batches).
            self.next_token = max(self.next_token, now - 1 / rate) + 1 / rate
        return None
