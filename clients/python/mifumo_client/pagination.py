"""Lists that follow the API's pagination as they are iterated.

``for contact in client.contacts.search("juma")`` fetches page after page as the loop needs
them; ``.pages()`` gives the pages themselves (with ``total``). Lists are newest first, so
items created while a walk is under way can shift it: an item may then come twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from mifumo_client._core import Call, Link
from mifumo_client.models import Page

T = TypeVar("T")


class SyncPager(Generic[T]):
    """Iterates over every item of a list, one request per page."""

    def __init__(self, run: Callable[[Call[Link[T]]], Link[T]], first: Call[Link[T]]) -> None:
        self._run = run
        self._first = first

    def pages(self) -> Iterator[Page[T]]:
        call: Call[Link[T]] | None = self._first
        while call is not None:
            link = self._run(call)
            yield link.page
            call = link.next

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items


class AsyncPager(Generic[T]):
    """``async for`` over every item of a list, one request per page."""

    def __init__(
        self, run: Callable[[Call[Link[T]]], Awaitable[Link[T]]], first: Call[Link[T]]
    ) -> None:
        self._run = run
        self._first = first

    async def pages(self) -> AsyncIterator[Page[T]]:
        call: Call[Link[T]] | None = self._first
        while call is not None:
            link = await self._run(call)
            yield link.page
            call = link.next

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()
