"""What the sync and the async client share: a call described as data, the answer read out
of the envelope, when to retry and how long to wait.

A resource method builds a ``Call`` (method, path, body, how to read the answer); the client
runs it (with retries) over its own httpx client. Building and reading are plain functions,
so ``Mifumo`` and ``AsyncMifumo`` differ only in how they wait.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

import httpx

from mifumo_client._convert import ConversionError
from mifumo_client._version import __version__
from mifumo_client.errors import (
    ConfigurationError,
    MifumoConnectionError,
    MifumoTimeoutError,
    UnexpectedResponseError,
    error_for,
    retry_after_seconds,
)
from mifumo_client.models import Page

T = TypeVar("T")
logger = logging.getLogger("mifumo_client")

DEFAULT_BASE_URL = "http://127.0.0.1:8001"
API_PATH = "/api/integration/v1/"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
#: A 429 or 503 asking to wait longer than this is raised at once rather than waited out.
MAX_RETRY_AFTER = 60.0
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
ENVELOPE_KEYS = frozenset({"success", "message", "data", "error_code", "details"})
USER_AGENT = (
    f"mifumo-python/{__version__} httpx/{httpx.__version__} python/{platform.python_version()}"
)

# Errors raised before a byte of the request left: always safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: the envelope's ``data`` (None for a raw answer), its headers and
    its raw body."""

    data: Any
    headers: httpx.Headers
    content: bytes


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its answer."""

    method: str
    path: str  # under the API root, e.g. "sms/send/"
    parse: Callable[[Answer], T]
    params: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    idempotency_key: str | None = None
    # Safe to send again when it may already have reached the server (the server dedupes
    # it by its Idempotency-Key, or doing it twice is harmless). Otherwise it is sent again
    # only when it certainly did not arrive, or was refused with 429.
    replay_safe: bool = True
    # The result when an attempt whose answer was lost may have done the work, and a later
    # one finds nothing left to do (404): a delete that happened.
    gone_is_done: Callable[[], T] | None = None
    envelope: bool = True  # False: a successful answer is the raw body (the CSV export)
    progress: Callable[[int, int], None] | None = None  # (bytes sent, bytes in all)


@dataclass(frozen=True, slots=True)
class Link(Generic[T]):
    """A page of a list and the call for the next one."""

    page: Page[T]
    next: Call[Link[T]] | None


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Config:
    api_key: str
    api_root: str  # ends in /api/integration/v1/
    timeout: float
    max_retries: int

    @classmethod
    def resolve(
        cls, api_key: str | None, base_url: str | None, timeout: float, max_retries: int
    ) -> Config:
        key = api_key or os.environ.get("MIFUMO_API_KEY")
        if not key:
            raise ConfigurationError(
                "No API key: pass api_key=… or set MIFUMO_API_KEY (a mif_live_… or mif_test_… key)"
            )
        if max_retries < 0:
            raise ConfigurationError("max_retries must be 0 or more")
        url = base_url or os.environ.get("MIFUMO_URL") or DEFAULT_BASE_URL
        return cls(key.strip(), api_root(url), timeout, max_retries)

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }


def api_root(base_url: str) -> str:
    """``http://host:8001`` (or the API root itself) -> ``http://host:8001/api/integration/v1/``."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"The base URL must start with http:// or https://, not {url!r}")
    if url.endswith(API_PATH.rstrip("/")):
        return url + "/"
    return url + API_PATH


def request_headers(call: Call[Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if call.idempotency_key is not None:
        headers["Idempotency-Key"] = call.idempotency_key
    if call.content is not None:
        headers["Content-Type"] = call.content_type or "application/octet-stream"
        headers["Content-Length"] = str(len(call.content))
    return headers


def final_answer(call: Call[T], response: httpx.Response, attempts: Attempts) -> T:
    """The call's result from its last answer: a 404 after an attempt that may have done the
    work is that work done (``Call.gone_is_done``), not an error."""
    if response.status_code == 404 and attempts.may_have_arrived and call.gone_is_done:
        return call.gone_is_done()
    return read_answer(call, response)


def read_answer(call: Call[T], response: httpx.Response) -> T:
    """The parsed result of a successful answer, or the error an error answer stands for."""
    request_id = response.headers.get("X-Request-ID")
    if not call.envelope and response.is_success:
        return call.parse(Answer(None, response.headers, response.content))
    try:
        body = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        body = None
    if not (isinstance(body, dict) and body.keys() >= ENVELOPE_KEYS):
        raise UnexpectedResponseError(
            f"HTTP {response.status_code}: the answer is not the API's JSON envelope",
            status=response.status_code,
            error_code=None,
            details=response.text[:500],
            request_id=request_id,
            headers=response.headers,
        )
    if response.is_success and body["success"] is True:
        try:
            return call.parse(Answer(body["data"], response.headers, response.content))
        except (ConversionError, KeyError, TypeError) as exc:
            raise UnexpectedResponseError(
                f"The answer to {call.method} {call.path} does not have the documented shape: "
                f"{exc}",
                status=response.status_code,
                error_code=None,
                details=body["data"],
                request_id=request_id,
                headers=response.headers,
            ) from exc
    details = body.get("details")
    if request_id is None and isinstance(details, dict):
        request_id = details.get("request_id")
    raise error_for(
        status=response.status_code,
        error_code=body.get("error_code"),
        message=str(body.get("message") or f"HTTP {response.status_code}"),
        details=details,
        request_id=request_id,
        headers=response.headers,
    )


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s … up to 8 s."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def delay_after_response(call: Call[Any], response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before trying ``call`` again after ``response``, or None to stop."""
    status = response.status_code
    if status not in (429, 503) or (status == 503 and not call.replay_safe):
        return None
    asked = retry_after_seconds(response.headers)
    if asked is not None:
        return asked if asked <= MAX_RETRY_AFTER else None
    return backoff(attempt)


def delay_after_error(call: Call[Any], error: httpx.TransportError, attempt: int) -> float | None:
    if isinstance(error, _NOT_SENT) or call.replay_safe:
        return backoff(attempt)
    return None


class Attempts:
    """The retry policy of one call: after each failed attempt, how long to wait before the
    next, or the error to raise when there is none."""

    def __init__(self, call: Call[Any], max_retries: int) -> None:
        self.call = call
        self.max_retries = max_retries
        self.done = 0
        # An attempt may have reached the server and done the work, its answer lost.
        self.may_have_arrived = False

    def after_error(self, error: httpx.TransportError) -> float:
        """The wait before the next attempt; raises ``MifumoConnectionError`` when none."""
        self.done += 1
        self.may_have_arrived = self.may_have_arrived or not isinstance(error, _NOT_SENT)
        delay = delay_after_error(self.call, error, self.done - 1)
        if delay is None or self.done > self.max_retries:
            raise connection_error(self.call, error, self.done) from error
        _log_retry(self.call, delay, repr(error))
        return delay

    def after_response(self, response: httpx.Response) -> float | None:
        """The wait before the next attempt, or None: the answer is final."""
        self.done += 1
        if self.done > self.max_retries:
            return None
        delay = delay_after_response(self.call, response, self.done - 1)
        if delay is not None:
            _log_retry(self.call, delay, f"HTTP {response.status_code}")
        return delay


def _log_retry(call: Call[Any], delay: float, why: str) -> None:
    logger.info("%s %s: trying again in %.2f s after %s", call.method, call.path, delay, why)


UPLOAD_CHUNK = 64 * 1024


def upload_chunks(data: bytes, progress: Callable[[int, int], None]) -> Iterator[bytes]:
    """``data`` in chunks, telling ``progress`` how much has gone."""
    total = len(data)
    progress(0, total)
    for start in range(0, total, UPLOAD_CHUNK):
        chunk = data[start : start + UPLOAD_CHUNK]
        yield chunk
        progress(start + len(chunk), total)


async def upload_chunks_async(
    data: bytes, progress: Callable[[int, int], None]
) -> AsyncIterator[bytes]:
    for chunk in upload_chunks(data, progress):
        yield chunk


def connection_error(
    call: Call[Any], error: httpx.TransportError, attempts: int
) -> MifumoConnectionError:
    timed_out = isinstance(error, httpx.TimeoutException)
    kind = MifumoTimeoutError if timed_out else MifumoConnectionError
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return kind(f"{call.method} {call.path}: no answer after {tries}: {error!r}")
