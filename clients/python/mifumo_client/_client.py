"""``Mifumo`` and ``AsyncMifumo``: configuration, the HTTP connection and the retry loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from mifumo_client import _ops as ops
from mifumo_client._core import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Attempts,
    Call,
    Config,
    final_answer,
    request_headers,
    upload_chunks,
    upload_chunks_async,
)
from mifumo_client.resources import (
    Async,
    AsyncSms,
    Bound,
    Contacts,
    Inbound,
    K,
    Keys,
    Op,
    Segments,
    Sms,
    Sync,
    Templates,
    Webhooks,
)

T = TypeVar("T")


class _Client(Bound[K]):
    balance = Op(ops.balance)
    request = Op(ops.raw)

    def __init__(
        self, api_key: str | None, base_url: str | None, timeout: float, max_retries: int
    ) -> None:
        self._config = Config.resolve(api_key, base_url, timeout, max_retries)
        self._headers = self._config.headers()
        self.contacts: Contacts[K] = Contacts(self)
        self.segments: Segments[K] = Segments(self)
        self.templates: Templates[K] = Templates(self)
        self.inbound: Inbound[K] = Inbound(self)
        self.webhooks: Webhooks[K] = Webhooks(self)
        self.keys: Keys[K] = Keys(self)

    @property
    def api_root(self) -> str:
        """The API's root URL, ending in ``/api/integration/v1/``."""
        return self._config.api_root

    def _request_arguments(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "method": call.method,
            "url": self._config.api_root + call.path,
            "params": call.params,
            "json": call.json,
            "headers": {**self._headers, **request_headers(call)},
            "timeout": self._config.timeout,
        }


class Mifumo(_Client[Sync]):
    """The Mifumo Integration API.

    ``api_key`` and ``base_url`` default to the ``MIFUMO_API_KEY`` and ``MIFUMO_URL``
    environment variables (and ``http://127.0.0.1:8001``). ``timeout`` is in seconds per
    attempt; ``max_retries`` bounds the retries after 429, 503 and connection errors.
    Use it as a context manager, or ``close()`` it, to release its connections.
    """

    _is_async = False

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self.sms = Sms(self)

    def _run(self, call: Call[T]) -> T:
        attempts = Attempts(call, self._config.max_retries)
        while True:
            content: bytes | Iterator[bytes] | None = call.content
            if call.content is not None and call.progress is not None:
                content = upload_chunks(call.content, call.progress)
            try:
                response = self._http.request(**self._request_arguments(call), content=content)
            except httpx.TransportError as error:
                time.sleep(attempts.after_error(error))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return final_answer(call, response, attempts)
            time.sleep(delay)

    def close(self) -> None:
        """Release the connections (not those of an ``http_client`` passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Mifumo:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncMifumo(_Client[Async]):
    """``Mifumo`` for asyncio: the same resources and arguments, every call awaited, lists
    iterated with ``async for``."""

    _is_async = True

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self.sms = AsyncSms(self)

    async def _run(self, call: Call[T]) -> T:
        attempts = Attempts(call, self._config.max_retries)
        while True:
            content: bytes | AsyncIterator[bytes] | None = call.content
            if call.content is not None and call.progress is not None:
                content = upload_chunks_async(call.content, call.progress)
            try:
                arguments = self._request_arguments(call)
                response = await self._http.request(**arguments, content=content)
            except httpx.TransportError as error:
                await asyncio.sleep(attempts.after_error(error))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return final_answer(call, response, attempts)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """Release the connections (not those of an ``http_client`` passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMifumo:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
