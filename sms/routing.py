"""Which carriers a recipient's message goes to, in failover order.

A ``CarrierRoute`` maps a number prefix (E.164 digits without "+") to an ordered list of
carrier names; the longest active matching prefix wins, and a number no route covers goes to
``settings.MIFUMO_CARRIER``. A carrier's ``ROUTES`` option (a list of prefixes, as each bind of
``MIFUMO_SMPP_BINDS`` has) adds routes from configuration; a route in the database for the
same prefix takes precedence. Test keys always use the simulator, whatever the routes say.

Some carriers submit from a process of their own rather than from the Celery workers: an SMPP
bind is a long-lived, windowed connection that belongs in ``manage.py run_smpp``. A carrier
does when its ``DEDICATED_PROCESS`` option says so, and by default when its backend says so
(``BaseCarrier.runs_in_own_process``, true of the SMPP one).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.utils.module_loading import import_string

from sms.carriers import carrier_options
from sms.carriers.base import BaseCarrier
from sms.models import CarrierRoute

SIMULATOR = "simulator"
_CACHE_SECONDS = 10.0
_cache: tuple[float, dict[str, tuple[str, ...]], tuple[int, ...]] | None = None

Route = tuple[str, ...]


def _table() -> tuple[dict[str, Route], tuple[int, ...]]:
    """prefix -> carriers, and the prefix lengths longest first; read at most every few
    seconds, so a batch of recipients costs no query and an edit in the admin is seen soon."""
    global _cache
    now = time.monotonic()
    if _cache is None or now - _cache[0] > _CACHE_SECONDS:
        routes = configured_routes()
        routes.update(
            (route.prefix, tuple(route.carrier_names))
            for route in CarrierRoute.objects.filter(active=True)
            if route.carrier_names
        )
        lengths = tuple(sorted({len(prefix) for prefix in routes}, reverse=True))
        _cache = (now, routes, lengths)
    return _cache[1], _cache[2]


def configured_routes() -> dict[str, Route]:
    """prefix -> carriers from the carriers' ``ROUTES`` options, in configuration order."""
    routes: dict[str, list[str]] = defaultdict(list)
    for name in settings.MIFUMO_CARRIERS:
        for prefix in carrier_options(name).get("ROUTES") or ():
            routes[str(prefix).lstrip("+")].append(name)
    return {prefix: tuple(names) for prefix, names in routes.items()}


def clear_cache(**_: object) -> None:
    global _cache
    _cache = None


# An edit in this process is seen at once; other processes see it when their cache expires.
post_save.connect(clear_cache, sender=CarrierRoute, dispatch_uid="sms.routing.saved")
post_delete.connect(clear_cache, sender=CarrierRoute, dispatch_uid="sms.routing.deleted")


def default_route() -> Route:
    return (str(settings.MIFUMO_CARRIER),)


def carriers_for_phone(phone: str, *, is_test: bool = False) -> Route:
    if is_test:
        return (SIMULATOR,)
    routes, lengths = _table()
    digits = phone.lstrip("+")
    for length in lengths:
        route = routes.get(digits[:length])
        if route is not None:
            return route
    return default_route()


def group_by_route(
    phones: Iterable[tuple[int, str]], *, is_test: bool = False
) -> dict[Route, list[tuple[int, str]]]:
    """(recipient id, phone) pairs grouped by the carriers their numbers route to."""
    groups: dict[Route, list[tuple[int, str]]] = defaultdict(list)
    for recipient_id, phone in phones:
        groups[carriers_for_phone(phone, is_test=is_test)].append((recipient_id, phone))
    return dict(groups)


def carriers_after(carrier: str, phone: str, *, is_test: bool = False) -> Route:
    """The failover carriers that follow ``carrier`` on the phone's route now (none when the
    route no longer names it)."""
    route = carriers_for_phone(phone, is_test=is_test)
    if carrier not in route:
        return ()
    return route[route.index(carrier) + 1 :]


def runs_in_own_process(carrier: str) -> bool:
    config = carrier_options(carrier)
    return _runs_in_own_process(str(config.get("BACKEND", "")), config.get("DEDICATED_PROCESS"))


@functools.lru_cache(maxsize=64)
def _runs_in_own_process(backend: str, explicit: object) -> bool:
    if explicit is not None:
        return bool(explicit)
    try:
        backend_class = import_string(backend)
    except ImportError:
        return False  # the system check reports it; dispatch fails over past it
    return (
        isinstance(backend_class, type)
        and issubclass(backend_class, BaseCarrier)
        and backend_class.runs_in_own_process
    )


def dedicated_carriers() -> list[str]:
    """Configured carriers that submit from ``run_smpp`` rather than from the workers."""
    return [name for name in settings.MIFUMO_CARRIERS if runs_in_own_process(name)]
