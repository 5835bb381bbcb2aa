"""HTTP for webhook deliveries: one POST, no redirects, one deadline, and a connection only
to an address that ``webhooks.security`` vetted at that very moment.

**The deadline.** ``post(..., timeout=T)`` is over within T seconds, whatever the receiver
does: resolving its name, connecting, TLS, sending the request and reading the answer all
count against the same deadline. httpx's own timeouts apply to each socket operation alone
(a receiver sending one byte a second would never trip a 10 s read timeout), so every
operation is given only what is left of the deadline (``_DeadlineStream``; a TLS handshake
is one operation, which Python bounds as a whole), and the name is resolved in a helper
thread that is not waited for past it.

``VettedTransport`` resolves the host itself, checks every address, and then connects to the
vetted address with the original ``Host`` header and TLS server name (SNI, and so
certificate checks) kept. The check and the connection use one DNS answer, so a name that
resolves to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding)
still cannot reach the inside.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpcore
import httpx

from webhooks import security

RESPONSE_HEAD_BYTES = 500
_MAX_ORIGINS = 64


def _version() -> str:
    try:
        return version("mifumo")
    except PackageNotFoundError:
        return "0"


USER_AGENT = f"Mifumo-Webhooks/{_version()}"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: float
    error: str
    response_head: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_local = threading.local()  # this thread's client, and the deadline of its request


class _Request:
    """The deadline of the request this thread is making."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def left(self, error: type[Exception]) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise error("the delivery's deadline passed")
        return remaining


def _current() -> _Request | None:
    return getattr(_local, "request", None)


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[_Request]:
    request = _local.request = _Request(time.monotonic() + seconds)
    try:
        yield request
    finally:
        _local.request = None


def _cap(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` for one socket operation, cut to what is left of the deadline."""
    request = _current()
    if request is None:
        return timeout
    left = request.left(error)
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the deadline of the request using it (a
    kept-alive connection serves several requests, each with its own deadline)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        cap = _cap(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, cap))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        cap = _cap(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, cap, local_address, socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineHTTPTransport(httpx.HTTPTransport):
    """httpx's transport over connections that keep the deadline."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(retries=0, limits=limits)
        # httpx builds its connection pool without a way to choose the network backend;
        # the same pool, built again with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=0,
            network_backend=_DeadlineBackend(),
        )


_resolvers: dict[int, ThreadPoolExecutor] = {}


def _vetted_address(host: str, port: int) -> security.IPAddress:
    """The address to connect to, resolved within the deadline: a lookup that takes longer is
    left to finish in its thread, unwaited for."""
    request = _current()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if request is None or literal is not None:
        return security.vetted_addresses(host, port)[0]
    pid = os.getpid()
    resolver = _resolvers.get(pid)
    if resolver is None:
        resolver = _resolvers[pid] = ThreadPoolExecutor(4, thread_name_prefix="webhook-dns")
    lookup = resolver.submit(security.vetted_addresses, host, port)
    try:
        return lookup.result(timeout=request.left(httpx.ConnectTimeout))[0]
    except FutureTimeout:
        raise httpx.ConnectTimeout(f"resolving {host} took past the deadline") from None


class VettedTransport(httpx.BaseTransport):
    """Pins each request to a vetted address.

    Connections are pooled per original origin (scheme, host name, port), never per
    address: a TLS connection made for one name must not be reused for another name that
    happens to share its address.
    """

    def __init__(self) -> None:
        self._pools: OrderedDict[tuple[str, str, int], _DeadlineHTTPTransport] = OrderedDict()
        self._lock = threading.Lock()

    def _pool(self, origin: tuple[str, str, int]) -> _DeadlineHTTPTransport:
        evicted: list[httpx.HTTPTransport] = []
        with self._lock:
            pool = self._pools.get(origin)
            if pool is None:
                pool = _DeadlineHTTPTransport(
                    httpx.Limits(max_connections=50, max_keepalive_connections=10)
                )
                self._pools[origin] = pool
                while len(self._pools) > _MAX_ORIGINS:
                    evicted.append(self._pools.popitem(last=False)[1])
            else:
                self._pools.move_to_end(origin)
        for old in evicted:
            old.close()
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or security.SCHEMES[url.scheme]
        address = _vetted_address(host, port)
        request.url = url.copy_with(host=str(address))
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return self._pool((url.scheme, host, port)).handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()


def client() -> httpx.Client:
    """One client per thread and per process: connections are never shared between the
    threads of a thread pool, nor inherited through a fork."""
    pid = os.getpid()
    cached: tuple[int, httpx.Client] | None = getattr(_local, "client", None)
    if cached is not None and cached[0] == pid:
        return cached[1]
    fresh = httpx.Client(
        transport=VettedTransport(),
        follow_redirects=False,
        # Environment proxies would connect somewhere other than the vetted address.
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
    _local.client = (pid, fresh)
    return fresh


def _head(response: httpx.Response, deadline: float) -> bytes:
    """The first bytes of the body, without waiting past the deadline for a slow sender."""
    head = b""
    try:
        for chunk in response.iter_bytes():
            head += chunk
            if len(head) >= RESPONSE_HEAD_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass
    return head[:RESPONSE_HEAD_BYTES]


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def post(url: str, *, body: bytes, headers: Mapping[str, str], timeout: float) -> Outcome:
    """POST once and report what happened, within ``timeout`` seconds in all; never raises
    for network trouble."""
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    head = b""
    timed_out = f"Timed out after {timeout:g} s"
    try:
        with (
            _deadline(timeout) as request,
            client().stream(
                "POST", url, content=body, headers=dict(headers), timeout=httpx.Timeout(timeout)
            ) as response,
        ):
            status_code = response.status_code
            head = _head(response, request.deadline)
            if response.is_redirect:
                location = response.headers.get("location", "")
                error = f"Redirect ({status_code}) to {location[:200]!r} not followed"
            elif not response.is_success:
                error = f"HTTP {status_code} {response.reason_phrase}".strip()
    except security.UnsafeDestination as exc:
        error = f"Refused: {exc}"
    except httpx.TimeoutException:
        error = timed_out
    except httpx.HTTPError as exc:
        error = _describe(exc)
    latency_ms = round((time.monotonic() - started) * 1000, 3)
    text = head.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return Outcome(
        status_code=status_code, latency_ms=latency_ms, error=error[:500], response_head=text
    )
