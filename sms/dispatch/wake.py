"""Waking the dispatcher: the database is the queue, a Redis flag says work is pending.

After a send commits, ``dispatch_wake`` sets the "dispatch pending" flag with ``SET NX`` (the
cache's ``add``) and a TTL; only the caller that newly set it publishes a ``dispatch_queued``
task. The task claims queued recipients of any message until none is left, and clears the flag
BEFORE its last claim (``sms.dispatch.claims.queued_dispatch``): the claim that finds
nothing, or, once the flag is cleared, the first that is not a full batch. So with steady
traffic there is about one broker message per batch rather than one per send.

No wake-up is lost. A send commits its recipients, then sets the flag. The task clears the
flag, then claims (a new snapshot). Take a send S and the task's last round, clear C then
claim L:

- S committed before L's snapshot: L sees S's recipients (or another worker holds them
  claimed). L was not a full batch, so it took every queued recipient it saw, S's among
  them; had it been full, the task would have gone on.
- S committed after L's snapshot: then S's ``add`` came after its commit, so after L, so
  after C. Either the flag is still clear and S publishes a new task, or another caller set
  it after C, and that caller published a task which clears and claims only after it started,
  later than S's ``add`` (the flag was still set then), so after S's commit: it sees S's
  recipients.

The flag's TTL (``MIFUMO_DISPATCH_WAKE_SECONDS``) bounds the harm of a task that was lost (a
worker killed before it ran it): the next send after the TTL publishes again, and the sweep
finds queued work nobody took. A backlog is shared out: a dispatcher whose claim came back
full publishes a helper task (``wake_helper``, at most one a second), which works alongside it
(claims skip each other's rows) on another worker process.

When the cache or the broker is down at send time the wake is logged and left to the sweep,
which wakes the dispatcher unconditionally (``force``).

A send's wake rides along with the next request's rate-limit round trip
(``MIFUMO_DISPATCH_WAKE_COALESCE_MS`` above 0, the default): the send's on-commit hook
(``dispatch_wake_soon``) only notes that a wake is owed. The next ``count_mark_and_read`` of
the process (``mifumo.counters``: every API request makes one before its work) takes the note,
clearing it, and sets the flag with its own marks; if that set it anew, it publishes the task
as ``dispatch_wake`` would. Under load the next request comes within a millisecond or two,
and a send pays no round trip for its wake. So that a quiet process still wakes the
dispatcher, a daemon thread waits for a note and, once that note is a window old and still
not taken, makes the wake (clearing the note, then calling ``dispatch_wake``): sends committed
meanwhile share it. Under load the thread only looks, once a window.
Taker and thread hold the same lock from the clear until the flag is set, so one at a time
makes the process's wake.

The proof above needs only an ``add`` made for S after S's commit ("S's add"): the note is
made after the commit, and it is cleared BEFORE each wake made for it, so the wake that
clears S's note (the first clear after it) sets the flag after S's commit. A round trip that
fails leaves the note owed for the thread. A wake still owed when the interpreter exits is
made then (``wake_flush``), best effort; a process killed, or ending without its exit
handlers (Celery's pool children end with ``os._exit``), leaves it to the sweep, as with a
lost task. A window of 0, or Celery running tasks in place (``task_always_eager``), wakes in
the hook.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime

from celery import current_app, signature
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from mifumo.counters import add_rider

logger = logging.getLogger(__name__)

PENDING = "dispatch:pending"
HELPER = "dispatch:helper"
HELPER_SECONDS = 1
LATER = "dispatch:later"
TASK = "sms.tasks.dispatch_queued"


def dispatch_wake(*, force: bool = False) -> bool:
    """Make sure a dispatcher will look at the queued recipients committed so far. Publishes a
    ``dispatch_queued`` task when the "dispatch pending" flag was not set (or ``force``);
    returns whether it did. Never raises: what it could not do, the sweep does."""
    try:
        newly_set = cache.add(PENDING, 1, timeout=settings.MIFUMO_DISPATCH_WAKE_SECONDS)
    except Exception:  # noqa: BLE001 - the sweep wakes the dispatcher when Redis is back
        logger.warning("cache unavailable; the sweep will wake the dispatcher", exc_info=True)
        if not force:
            return False
        newly_set = False
    return _publish(newly_set, force=force)


def _publish(newly_set: bool, *, force: bool = False) -> bool:
    """Publish the task when the flag was set anew (or ``force``); see ``dispatch_wake``."""
    if not (newly_set or force):
        return False
    try:
        signature(TASK).delay()
    except Exception:  # noqa: BLE001 - the sweep picks it up when the broker is back
        logger.warning("broker unavailable; the sweep will dispatch", exc_info=True)
        if newly_set:
            # Set but no task behind it: let the next send try to publish again.
            wake_clear()
        return False
    return True


def wake_helper() -> bool:
    """Publish one more ``dispatch_queued`` task, at most one a second (a flag of its own):
    the dispatcher calls it when a claim came back full, so that a backlog is worked by every
    free worker process, not only the one the wake reached. Returns whether it published."""
    if current_app.conf.task_always_eager:
        return False  # run in place, a helper would only run inside this dispatcher
    try:
        if not cache.add(HELPER, 1, timeout=HELPER_SECONDS):
            return False
        signature(TASK).delay()
    except Exception:  # noqa: BLE001 - the running dispatcher carries on alone
        logger.warning("could not publish a helper dispatcher", exc_info=True)
        return False
    return True


def wake_clear() -> None:
    """Clear the "dispatch pending" flag: a send after this publishes a task again. The
    dispatcher calls it before its final claim (see the module's docstring)."""
    try:
        cache.delete(PENDING)
    except Exception:  # noqa: BLE001 - it expires on its own
        logger.warning("could not clear the dispatch flag; it expires on its own", exc_info=True)


def wake_pending() -> bool:
    """Whether the "dispatch pending" flag is set."""
    return bool(cache.get(PENDING))


def dispatch_later(moment: datetime) -> bool:
    """Publish one ``dispatch_queued`` task due at ``moment`` (recipients in backoff become
    claimable then), one per due second however many runs ask for it (a flag of its own per
    second). Returns whether it was published; when not, the sweep finds them."""
    countdown = max(0.0, (moment - timezone.now()).total_seconds())
    try:
        if not cache.add(f"{LATER}:{int(moment.timestamp())}", 1, timeout=int(countdown) + 60):
            return False  # already on its way
        signature(TASK).apply_async(countdown=countdown)
    except Exception:  # noqa: BLE001 - the sweep finds queued work nobody holds
        logger.warning("broker unavailable; the sweep will retry the recipients in backoff")
        return False
    return True


class _Waker:
    """The process's waker: ``owed`` is set by sends' hooks (``note``), and cleared just
    before each wake made for it, under ``calling``, by a round trip it rides along with
    (``_Ride``), by the thread or by ``wake_flush``."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.owed = threading.Event()
        # When the note was set (monotonic seconds): the thread makes the wake only once it
        # is a window old, so that it does not race the requests that carry it.
        self.noted_at = 0.0
        # Set by ``wake_flush`` to end the thread's window: what it waited for is made.
        self.flushed = threading.Event()
        self.calling = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="dispatch-wake", daemon=True)
        self.thread.start()

    def note(self) -> None:
        """A wake is owed (a send's hook, after its commit)."""
        if not self.owed.is_set():
            self.noted_at = time.monotonic()
            self.owed.set()

    def wake_owed(self) -> None:
        """Clear the note, then wake, if a wake is still owed (the caller holds ``calling``;
        ``wake_flush`` may have made it while the thread waited for the lock)."""
        if self.owed.is_set():
            self.owed.clear()
            dispatch_wake()

    def _run(self) -> None:
        while True:
            self.owed.wait()
            self.flushed.clear()
            # Time for a request's round trip to carry it (and for more sends to share it):
            # a note carried meanwhile and set again by a later send is waited for anew.
            window = max(settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS, 0) / 1000
            while self.owed.is_set():
                left = self.noted_at + window - time.monotonic()
                if left <= 0 or self.flushed.wait(left):
                    break
            try:
                with self.calling:
                    self.wake_owed()
            except Exception:  # the thread must outlive anything one wake does
                logger.exception("dispatch wake failed; the sweep will wake the dispatcher")


class _Ride:
    """The owed wake taken by a round trip of ``mifumo.counters``: the flag is one of its
    marks. Holds the waker's ``calling`` from the note's clear until ``done``."""

    key = PENDING

    def __init__(self, waker: _Waker) -> None:
        self.waker = waker
        self.seconds = settings.MIFUMO_DISPATCH_WAKE_SECONDS

    def done(self, newly_set: bool | None) -> None:
        try:
            if newly_set is None:
                self.waker.note()  # not made: the thread makes it
            else:
                _publish(newly_set)
        finally:
            self.waker.calling.release()


class _Rider:
    def take(self) -> _Ride | None:
        """The wake this process owes, to be made by the caller's round trip; None when none
        is owed, or the thread or another round trip is making it."""
        waker = _waker
        if waker is None or not waker.owed.is_set() or waker.pid != os.getpid():
            return None
        if not waker.calling.acquire(blocking=False):
            return None
        if not waker.owed.is_set():  # made while this looked
            waker.calling.release()
            return None
        waker.owed.clear()
        return _Ride(waker)


_waker: _Waker | None = None
_waker_lock = threading.Lock()


def _process_waker() -> _Waker:
    """This process's waker, started on first use: a forked child (the web server and Celery
    fork after import) has none of its parent's threads, so it starts its own."""
    global _waker
    waker = _waker
    if waker is not None and waker.pid == os.getpid():
        return waker
    with _waker_lock:
        if _waker is None or _waker.pid != os.getpid():
            _waker = _Waker()
        return _waker


def _new_lock_in_child() -> None:
    """A fork taken while another thread held the lock would leave the child's copy held."""
    global _waker_lock
    _waker_lock = threading.Lock()


def dispatch_wake_soon() -> None:
    """A send's on-commit hook: a wake is owed, made by the process's next round trip of
    ``mifumo.counters`` or else by its waker thread ``MIFUMO_DISPATCH_WAKE_COALESCE_MS`` later;
    at once when that is 0 or tasks run in place."""
    if settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS <= 0 or current_app.conf.task_always_eager:
        dispatch_wake()
        return
    _process_waker().note()


def wake_flush(timeout: float = 5.0) -> bool:
    """Make the wake this process owes now, after a call the waker thread is making: on return
    every send committed before has had a ``dispatch_wake`` made after its commit. At exit, and
    for callers that need the wake done (tests). False when the thread's call outlasted
    ``timeout``."""
    waker = _waker
    if waker is None or waker.pid != os.getpid():
        return True
    if not waker.calling.acquire(timeout=timeout):
        return False
    try:
        waker.wake_owed()
    finally:
        waker.calling.release()
    waker.flushed.set()
    return True


os.register_at_fork(after_in_child=_new_lock_in_child)
atexit.register(wake_flush, timeout=1.0)
add_rider(_Rider())
