"""HTTP for webhook deliveries: one POST, no redirects, a hard deadline, and a connection only
to an address that ``webhooks.security`` vetted at that very moment.

``VettedTransport`` resolves the host itself, checks every address, and then connects to the
vetted address with the original ``Host`` header and TLS server name (SNI, and so
certificate checks) kept. The check and the connection use one DNS answer, so a name that
resolves to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding)
still cannot reach the inside.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

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


class VettedTransport(httpx.BaseTransport):
    """Pins each request to a vetted address.

    Connections are pooled per original origin (scheme, host name, port), never per
    address: a TLS connection made for one name must not be reused for another name that
    happens to share its address.
    """

    def __init__(self) -> None:
        self._pools: OrderedDict[tuple[str, str, int], httpx.HTTPTransport] = OrderedDict()
        self._lock = threading.Lock()

    def _pool(self, origin: tuple[str, str, int]) -> httpx.HTTPTransport:
        evicted: list[httpx.HTTPTransport] = []
        with self._lock:
            pool = self._pools.get(origin)
            if pool is None:
                pool = httpx.HTTPTransport(
                    retries=0,
                    limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
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
        address = security.vetted_addresses(host, port)[0]
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


_local = threading.local()


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
    """POST once and report what happened; never raises for network trouble."""
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    head = b""
    try:
        with client().stream(
            "POST", url, content=body, headers=dict(headers), timeout=httpx.Timeout(timeout)
        ) as response:
            status_code = response.status_code
            head = _head(response, started + timeout)
            if response.is_redirect:
                location = response.headers.get("location", "")
                error = f"Redirect ({status_code}) to {location[:200]!r} not followed"
            elif not response.is_success:
                error = f"HTTP {status_code} {response.reason_phrase}".strip()
    except security.UnsafeDestination as exc:
        error = f"Refused: {exc}"
    except httpx.TimeoutException:
        error = f"Timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = _describe(exc)
    latency_ms = round((time.monotonic() - started) * 1000, 3)
    text = head.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return Outcome(
        status_code=status_code, latency_ms=latency_ms, error=error[:500], response_head=text
    )
