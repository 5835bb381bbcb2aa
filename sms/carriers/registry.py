"""Every carrier alive in this process, and the one place that hooks fork and exit for them.

Carriers hold connections (a pooled HTTP client; an SMPP bind, its socket and its threads),
and two moments concern all of them at once:

* a forked child inherits the parent's sockets but none of its threads: each carrier
  ``forget_after_fork()``s what it inherited, without closing it (that would end the
  parent's sessions too), and opens connections of its own when next used;
* at interpreter exit each carrier is ``close()``d, so an SMPP bind unbinds politely instead
  of having its daemon threads cut mid-write.

Every ``BaseCarrier`` is held here from its construction; one nobody refers to any more is
let go. ``sms.carriers.get_carrier`` keeps the one instance per name that a process uses.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from typing import Protocol

logger = logging.getLogger(__name__)


class Held(Protocol):
    """What the registry asks of a carrier (``BaseCarrier`` provides it)."""

    name: str

    def close(self) -> None: ...

    def forget_after_fork(self) -> None: ...


_held: weakref.WeakSet[Held] = weakref.WeakSet()


def hold(carrier: Held) -> None:
    _held.add(carrier)


def forget_after_fork() -> None:
    """In a forked child: every carrier drops what it inherited from the parent."""
    for carrier in list(_held):
        carrier.forget_after_fork()


def close_all() -> None:
    """Close every carrier; one that fails to close does not keep the others open."""
    for carrier in list(_held):
        try:
            carrier.close()
        except Exception:
            logger.exception("closing carrier %s failed", carrier.name)


os.register_at_fork(after_in_child=forget_after_fork)
atexit.register(close_all)
