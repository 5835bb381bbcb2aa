"""The API's resources, written once for both clients.

A resource class lists its operations (the functions of ``_ops``, which build the calls).
On ``Mifumo`` an operation is a method that returns its result; on ``AsyncMifumo`` the same
method returns an awaitable; list operations return a pager that follows the pages.
Signatures and docstrings are the operation's own, so the two clients cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, overload

from mifumo_client import _ops as ops
from mifumo_client._core import Call, Link
from mifumo_client.errors import WaitTimeoutError
from mifumo_client.models import MessageStatus
from mifumo_client.pagination import AsyncPager, SyncPager

P = ParamSpec("P")
T = TypeVar("T")


class Sync:
    """Marks a resource of ``Mifumo``."""


class Async:
    """Marks a resource of ``AsyncMifumo``."""


K = TypeVar("K", Sync, Async)


class Bound(Generic[K]):
    """Something operations can be bound to: it has ``_run(call)`` (returning the result, or an
    awaitable of it) and says whether it is async."""

    _run: Callable[[Call[Any]], Any]
    _is_async: bool


class Resource(Bound[K]):
    def __init__(self, client: Bound[K]) -> None:
        self._run = client._run
        self._is_async = client._is_async


class _Operation(Generic[P, T]):
    """A non-data descriptor: the operation ``build`` as a method of the instance it is read
    from, kept in the instance afterwards so that later reads cost nothing."""

    def __init__(self, build: Callable[P, Any]) -> None:
        self.build = build
        # The result's type, not the call's: the bound method returns what the call answers.
        self.signature = inspect.signature(build).replace(return_annotation=inspect.Signature.empty)
        self.name = build.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def bind(self, instance: Bound[Any]) -> Callable[..., Any]:
        raise NotImplementedError

    def _bound(self, instance: Bound[Any] | None) -> Any:
        if instance is None:
            return self
        method = self.bind(instance)
        method.__name__ = self.name
        method.__doc__ = self.build.__doc__
        method.__signature__ = self.signature  # type: ignore[attr-defined]
        instance.__dict__[self.name] = method
        return method


class Op(_Operation[P, T]):
    """An operation answering one result."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        super().__init__(build)

    def bind(self, instance: Bound[Any]) -> Callable[..., Any]:
        run, build = instance._run, self.build
        return lambda *args, **kwargs: run(build(*args, **kwargs))

    @overload
    def __get__(self, instance: None, owner: type) -> Op[P, T]: ...
    @overload
    def __get__(self, instance: Bound[Sync], owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, instance: Bound[Async], owner: type
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, instance: Bound[Any] | None, owner: type) -> Any:
        return self._bound(instance)


class Pages(_Operation[P, T]):
    """A list operation: the method returns a pager over every item."""

    def __init__(self, build: Callable[P, Call[Link[T]]]) -> None:
        super().__init__(build)

    def bind(self, instance: Bound[Any]) -> Callable[..., Any]:
        run, build = instance._run, self.build
        pager = AsyncPager if instance._is_async else SyncPager
        return lambda *args, **kwargs: pager(run, build(*args, **kwargs))

    @overload
    def __get__(self, instance: None, owner: type) -> Pages[P, T]: ...
    @overload
    def __get__(self, instance: Bound[Sync], owner: type) -> Callable[P, SyncPager[T]]: ...
    @overload
    def __get__(self, instance: Bound[Async], owner: type) -> Callable[P, AsyncPager[T]]: ...
    def __get__(self, instance: Bound[Any] | None, owner: type) -> Any:
        return self._bound(instance)


class SmsOperations(Resource[K]):
    send = Op(ops.sms_send)
    status = Op(ops.sms_status)
    recipients = Pages(ops.sms_recipients)
    cancel = Op(ops.sms_cancel)
    messages = Pages(ops.sms_messages)
    message = Op(ops.sms_message)
    delivery_reports = Pages(ops.sms_delivery_reports)
    sender_ids = Pages(ops.sms_sender_ids)
    request_sender_id = Op(ops.sms_request_sender_id)


def _waited_enough(status: MessageStatus, deadline: float, interval: float) -> bool:
    if status.is_final:
        return True
    if time.monotonic() + interval > deadline:
        raise WaitTimeoutError(
            f"message {status.message_id} is still {status.status} after the wait", status
        )
    return False


class Sms(SmsOperations[Sync]):
    def wait(
        self,
        message_id: str,
        *,
        timeout: float = 300.0,
        interval: float = 2.0,
        on_update: Callable[[MessageStatus], None] | None = None,
    ) -> MessageStatus:
        """Poll the message's status every ``interval`` seconds until it is final
        (delivered, failed, partially_delivered or canceled) and return it; ``on_update``
        sees every status read. Raises ``WaitTimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(message_id, per_page=1)
            if on_update is not None:
                on_update(status)
            if _waited_enough(status, deadline, interval):
                return status
            time.sleep(interval)


class AsyncSms(SmsOperations[Async]):
    async def wait(
        self,
        message_id: str,
        *,
        timeout: float = 300.0,
        interval: float = 2.0,
        on_update: Callable[[MessageStatus], None] | None = None,
    ) -> MessageStatus:
        """As ``Sms.wait``."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status(message_id, per_page=1)
            if on_update is not None:
                on_update(status)
            if _waited_enough(status, deadline, interval):
                return status
            await asyncio.sleep(interval)


class Contacts(Resource[K]):
    create = Op(ops.contacts_create)
    get = Op(ops.contacts_get)
    update = Op(ops.contacts_update)
    delete = Op(ops.contacts_delete)
    search = Pages(ops.contacts_search)
    opt_out = Op(ops.contacts_opt_out)
    opt_in = Op(ops.contacts_opt_in)
    import_csv = Op(ops.contacts_import_csv)
    export_csv = Op(ops.contacts_export_csv)


class Templates(Resource[K]):
    list = Pages(ops.templates_list)
    create = Op(ops.templates_create)
    get = Op(ops.templates_get)
    update = Op(ops.templates_update)
    delete = Op(ops.templates_delete)


class Inbound(Resource[K]):
    list = Pages(ops.inbound_list)
    get = Op(ops.inbound_get)
    simulate = Op(ops.inbound_simulate)


class Segments(Resource[K]):
    list = Pages(ops.segments_list)
    create = Op(ops.segments_create)
    get = Op(ops.segments_get)
    update = Op(ops.segments_update)
    delete = Op(ops.segments_delete)
    contacts = Pages(ops.segments_contacts)


class Webhooks(Resource[K]):
    list = Pages(ops.webhooks_list)
    create = Op(ops.webhooks_create)
    get = Op(ops.webhooks_get)
    update = Op(ops.webhooks_update)
    delete = Op(ops.webhooks_delete)
    test = Op(ops.webhooks_test)
    rotate_secret = Op(ops.webhooks_rotate_secret)
    deliveries = Pages(ops.webhooks_deliveries)
    delivery = Op(ops.webhooks_delivery)
    redeliver = Op(ops.webhooks_redeliver)
    signing_secret = Op(ops.webhooks_signing_secret)
    rotate_signing_secret = Op(ops.webhooks_rotate_signing_secret)


class Keys(Resource[K]):
    list = Pages(ops.keys_list)
    create = Op(ops.keys_create)
    revoke = Op(ops.keys_revoke)
    rotate = Op(ops.keys_rotate)
