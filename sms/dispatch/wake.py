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

Sends may share wakes (``MIFUMO_DISPATCH_WAKE_COALESCE_MS`` above 0; off by default, since
fewer wakes also meant fewer dispatch tasks working side by side and later deliveries, see
bench/README.md). A send's on-commit hook (``dispatch_wake_soon``) then only notes that a
wake is owed; a daemon thread of the process waits for the note, clears it, calls
``dispatch_wake``, then sleeps the window. Sends committed during the call or the sleep
leave the note set and share the next round, so a busy web process makes one ``SET NX`` per
window rather than one per send. The proof above needs only an ``add`` made for S after S's
commit ("S's add"): the note is made after the commit, and the note is cleared BEFORE each
call, so the round that clears S's note (the first clear after it) adds after S's commit.
A wake still owed when the interpreter exits is made then (``wake_flush``), best effort; a
process killed, or ending without its exit handlers (Celery's pool children end with
``os._exit``), leaves it to the sweep, as with a lost task. A window of 0, or Celery running
tasks in place (``task_always_eager``), wakes in the hook.
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
    """The process's coalescing waker: ``owed`` is set by sends' hooks, and cleared just
    before each ``dispatch_wake`` made for it, under ``calling``, by the thread or by
    ``wake_flush``."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.owed = threading.Event()
        self.calling = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="dispatch-wake", daemon=True)
        self.thread.start()

    def wake_owed(self) -> None:
        """Clear the note, then wake, if a wake is still owed (the caller holds ``calling``;
        ``wake_flush`` may have made it while the thread waited for the lock)."""
        if self.owed.is_set():
            self.owed.clear()
            dispatch_wake()

    def _run(self) -> None:
        while True:
            self.owed.wait()
            try:
                with self.calling:
                    self.wake_owed()
            except Exception:  # the thread must outlive anything one wake does
                logger.exception("dispatch wake failed; the sweep will wake the dispatcher")
            time.sleep(max(settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS, 0) / 1000)


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
    """A send's on-commit hook: a wake is owed, made by the process's waker thread at most once
    per ``MIFUMO_DISPATCH_WAKE_COALESCE_MS``; at once when that is 0 or tasks run in place."""
    if settings.MIFUMO_DISPATCH_WAKE_COALESCE_MS <= 0 or current_app.conf.task_always_eager:
        dispatch_wake()
        return
    _process_waker().owed.set()


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
    return True


os.register_at_fork(after_in_child=_new_lock_in_child)
atexit.register(wake_flush, timeout=1.0)
