"""Shared plumbing for carriers reached over HTTP (aggregators such as Beem, Africa's Talking
and Twilio).

Each carrier keeps one pooled ``httpx.Client``, opened by ``open()`` and released by
``close()``, and every failure of a request is translated here, once, into ``CarrierError``:

* no answer in TIMEOUT seconds, refused or reset connections -> temporary (``permanent=False``);
* HTTP 5xx and 429 -> temporary, so the dispatcher backs off and retries;
* HTTP 401 and 403 -> permanent, code ``CARRIER_AUTH``: retrying with the same credentials
  cannot succeed;
* a 2xx body that is not JSON -> temporary.

A timeout is ambiguous (the provider may have accepted the request before the answer was
lost); it is treated as temporary because a duplicate SMS costs less than a lost one.

Other 4xx answers carry provider-specific meaning and are left to the subclasses.

Options common to every HTTP carrier: BASE_URL (the provider's API root; default its public
URL), TIMEOUT (seconds, default 10), MAX_CONNECTIONS (pool size, default 10).

Error messages never contain credentials or URLs, because they end up in
``Recipient.error_message``, which API clients read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from sms.carriers.base import BaseCarrier, CarrierError, OutboundSms, SubmitResult

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 10
USER_AGENT = "Mifumo-SMS/1.0"

Outcome = SubmitResult | CarrierError


class HttpCarrier(BaseCarrier):
    """Base for HTTP carriers; subclasses set ``default_base_url`` and may override
    ``auth()`` and ``headers()``."""

    default_base_url: ClassVar[str] = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return str(self.setting("BASE_URL", self.default_base_url)).rstrip("/")

    @property
    def timeout(self) -> float:
        return float(self.setting("TIMEOUT", DEFAULT_TIMEOUT))

    @property
    def max_connections(self) -> int:
        return int(self.setting("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS))

    def auth(self) -> httpx.Auth | None:
        return None

    def headers(self) -> dict[str, str]:
        return {}

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        with self._client_lock:
            if self._client is not None:
                return
            self._client = httpx.Client(
                base_url=self.base_url,
                timeout=self.timeout,
                auth=self.auth(),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers()},
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                ),
                # A redirect means a wrong BASE_URL; following it would send our credentials
                # to wherever it points.
                follow_redirects=False,
            )

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def forget_after_fork(self) -> None:
        # The child shares the parent's sockets: closing them would end the parent's TLS
        # sessions, so the child only drops its copy and opens its own pool when needed.
        self._client = None
        self._client_lock = threading.Lock()

    # -- requests ------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; transport failures and the statuses named in the module
        docstring raise ``CarrierError``, anything else is returned for the subclass."""
        self.open()
        client = self._client
        if client is None:
            raise CarrierError(f"{self.name}: carrier is closed", code="CARRIER_CLOSED")
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CarrierError(
                f"{self.name}: no answer within {self.timeout:g} s",
                permanent=False,
                code="CARRIER_TIMEOUT",
            ) from exc
        except httpx.HTTPError as exc:
            raise CarrierError(
                f"{self.name}: could not reach the provider ({type(exc).__name__})",
                permanent=False,
                code="CARRIER_UNREACHABLE",
            ) from exc
        logger.debug("%s %s %s -> %s", self.name, method, path, response.status_code)
        self.raise_for_status(response)
        return response

    def raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in (401, 403):
            raise CarrierError(
                f"{self.name}: the provider refused our credentials (HTTP {status})",
                permanent=True,
                code="CARRIER_AUTH",
            )
        if status == 429:
            raise CarrierError(
                f"{self.name}: rate limited by the provider (HTTP 429)",
                permanent=False,
                code="CARRIER_THROTTLED",
            )
        if status >= 500:
            raise CarrierError(
                f"{self.name}: provider error (HTTP {status})",
                permanent=False,
                code="CARRIER_UNAVAILABLE",
            )
        if 300 <= status < 400:
            raise CarrierError(
                f"{self.name}: unexpected redirect (HTTP {status})",
                permanent=False,
                code="CARRIER_BAD_RESPONSE",
            )

    def json_body(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise CarrierError(
                f"{self.name}: unreadable answer (HTTP {response.status_code})",
                permanent=False,
                code="CARRIER_BAD_RESPONSE",
            ) from exc


def settle(batch: Sequence[OutboundSms], outcomes: Mapping[int, Outcome]) -> list[SubmitResult]:
    """One result per recipient from the outcomes of several requests.

    When every recipient's request failed as a whole, the batch failed: the first permanent
    error (else the first error) is raised, so the dispatcher treats it like any unreachable
    carrier. Once something was accepted or answered, failed requests become per-recipient
    rejections, so accepted recipients are never submitted twice.
    """
    errors = [o for o in outcomes.values() if isinstance(o, CarrierError)]
    if errors and len(errors) == len(outcomes):
        raise next((e for e in errors if e.permanent), errors[0])
    results: list[SubmitResult] = []
    for sms in batch:
        outcome = outcomes.get(sms.recipient_id)
        if outcome is None:
            continue
        if isinstance(outcome, CarrierError):
            outcome = SubmitResult.rejected(
                sms, outcome.code, str(outcome)[:255], permanent=outcome.permanent
            )
        results.append(outcome)
    return results


def chunked(items: Sequence[OutboundSms], size: int) -> list[list[OutboundSms]]:
    size = max(1, size)
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def group_by_text(batch: Sequence[OutboundSms]) -> dict[tuple[str, str], list[OutboundSms]]:
    """Recipients that share a sender and a text, in input order: one bulk request each."""
    groups: dict[tuple[str, str], list[OutboundSms]] = {}
    for sms in batch:
        groups.setdefault((sms.sender_id, sms.text), []).append(sms)
    return groups


@dataclass(frozen=True)
class ChunkRequest:
    """One provider request carrying part of a batch; ``payload`` is what is posted."""

    recipients: list[OutboundSms]
    payload: dict[str, Any]


class ChunkedHttpCarrier(HttpCarrier):
    """A provider that takes a batch as several requests, sent one after the other."""

    def post_to_carrier(
        self, payload: list[ChunkRequest], batch: Sequence[OutboundSms]
    ) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        for index, request in enumerate(payload):
            try:
                results = self.submit_chunk(request)
            except CarrierError as exc:
                # The provider is in trouble or refuses us: the remaining requests would fare
                # no better, so they are not sent and share this outcome.
                for pending in payload[index:]:
                    outcomes.update({sms.recipient_id: exc for sms in pending.recipients})
                break
            outcomes.update({result.recipient_id: result for result in results})
        return outcomes

    def parse_recipient_status(
        self, response: dict[int, Outcome], batch: Sequence[OutboundSms]
    ) -> list[SubmitResult]:
        return settle(batch, response)

    def submit_chunk(self, request: ChunkRequest) -> list[SubmitResult]:
        raise NotImplementedError(f"{type(self).__name__} must implement submit_chunk")
