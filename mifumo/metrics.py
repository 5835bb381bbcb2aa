"""Prometheus metrics.

This module holds the registry and the exposition; each app defines and feeds its own
metrics (``sms.metrics``, ``webhooks.metrics``, connected in the app's ``ready()``).
Counters and histograms are updated where things happen: requests (the request-id
middleware), balance movements (a model signal, after commit) and Celery task failures here,
the rest in the apps. Gauges that describe the system as a whole (queue depths here, an
app's rows by status) are computed from PostgreSQL and Redis when scraped, so they are right
whichever process serves the scrape.

Processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (the container image sets it), every
process writes its samples to files there and a scrape adds them up, so one web server
``/metrics`` covers all of its workers, and each Celery worker serves the samples of its
pool on ``MIFUMO_METRICS_PORT``. Without it, each process exposes only its own samples.

Access: ``/metrics`` answers only a request carrying ``Authorization: Bearer
$MIFUMO_METRICS_TOKEN``; with no token configured it does not exist (404).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mifumo.celery import app as celery_app

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROC_DIR:
    # prometheus_client writes one file per process and metric type here.
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

_REDIS_PRIORITY_SEPARATOR = "\x06\x16"
_REDIS_PRIORITY_STEPS = (3, 6, 9)

HTTP_REQUESTS = Counter(
    "mifumo_http_requests",
    "HTTP requests served, by method, URL route and status code",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "mifumo_http_request_duration_seconds",
    "Time to produce the response, by method and URL route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BALANCE_DEBITS = Counter("mifumo_balance_debits", "Balance debits (sends charged)", ["currency"])
BALANCE_DEBITED = Counter(
    "mifumo_balance_debited_amount", "Money debited from balances", ["currency"]
)
BALANCE_REFUNDS = Counter("mifumo_balance_refunds", "Balance refunds", ["currency"])
BALANCE_REFUNDED = Counter(
    "mifumo_balance_refunded_amount", "Money refunded to balances", ["currency"]
)
TASK_FAILURES = Counter("mifumo_celery_task_failures", "Celery tasks that raised", ["task"])


# --- events -----------------------------------------------------------------------------------
def route_of(request: HttpRequest) -> str:
    """The URL pattern that served the request: bounded label values, unlike raw paths."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "static" if request.path.startswith(settings.STATIC_URL) else "unmatched"
    return "/" + str(match.route)


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    route = route_of(request)
    method = request.method or "GET"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def count_ledger_entry(*, entry: Any, **_: Any) -> None:
    """Receiver of ``integration.signals.ledger_entry_recorded``: debits and refunds counted
    once the movement commits."""
    kind = str(entry.kind)
    amount = abs(Decimal(entry.amount))
    # Every account keeps the platform currency; reading the account would cost a query.
    currency = str(settings.MIFUMO_CURRENCY)
    if kind == "debit":
        counters = (BALANCE_DEBITS, BALANCE_DEBITED)
    elif kind == "refund":
        counters = (BALANCE_REFUNDS, BALANCE_REFUNDED)
    else:
        return

    def count() -> None:
        counters[0].labels(currency).inc()
        counters[1].labels(currency).inc(float(amount))

    transaction.on_commit(count)


def count_task_failure(sender: Any = None, **_: Any) -> None:
    """Receiver of Celery's ``task_failure``."""
    TASK_FAILURES.labels(getattr(sender, "name", None) or str(sender)).inc()


# --- computed at scrape -------------------------------------------------------------------------
def queue_names() -> list[str]:
    """The Celery queues: every routed one and the default."""
    names = {str(celery_app.conf.task_default_queue)}
    routes = celery_app.conf.task_routes or {}
    if isinstance(routes, dict):
        names.update(str(route["queue"]) for route in routes.values() if "queue" in route)
    return sorted(names)


_redis_clients: dict[str, Any] = {}


def _redis(url: str) -> Any:
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        _redis_clients[url] = client
    return client


_scrape_collectors: dict[str, Collector] = {}


def collect_at_scrape(name: str, collector: Collector) -> None:
    """Add an app's gauges, computed afresh at each scrape of ``/metrics`` (not of a
    worker's port: those describe the whole system, not one process)."""
    _scrape_collectors[name] = collector


class QueueCollector(Collector):
    """Celery queue depths from Redis."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._queues()

    def _queues(self) -> Iterable[GaugeMetricFamily]:
        url = getattr(settings, "REDIS_URL", None)
        if not url:
            return []
        depth = GaugeMetricFamily(
            "mifumo_queue_depth", "Tasks waiting in a Celery queue", labels=["queue"]
        )
        unacked = GaugeMetricFamily(
            "mifumo_queue_unacked", "Tasks taken by a worker and not acknowledged yet"
        )
        try:
            client = _redis(url)
            names = queue_names()
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.llen(name)
                for step in _REDIS_PRIORITY_STEPS:
                    pipe.llen(f"{name}{_REDIS_PRIORITY_SEPARATOR}{step}")
            pipe.hlen("unacked")
            values = pipe.execute()
        except Exception:  # noqa: BLE001 - a scrape reports what it can
            logger.warning("metrics: cannot read queue depths", exc_info=True)
            return []
        per_queue = 1 + len(_REDIS_PRIORITY_STEPS)
        for index, name in enumerate(names):
            depth.add_metric([name], sum(values[index * per_queue : (index + 1) * per_queue]))
        unacked.add_metric([], values[-1])
        return [depth, unacked]


def _registry(*, system: bool) -> CollectorRegistry:
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_DefaultRegistry())
    if system:
        registry.register(QueueCollector())
        for collector in _scrape_collectors.values():
            registry.register(collector)
    return registry


class _DefaultRegistry(Collector):
    """This process's own metrics, for a registry that also holds per-scrape collectors."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def render(*, system: bool = True) -> bytes:
    return generate_latest(_registry(system=system))


def token_matches(authorization: str) -> bool:
    token = settings.MIFUMO_METRICS_TOKEN
    if not token:
        return False
    return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition; 404 unless the request bears the metrics token, so that
    the endpoint is invisible to anyone else."""
    if not token_matches(request.headers.get("Authorization", "")):
        raise Http404
    return HttpResponse(render(system=True), content_type=CONTENT_TYPE_LATEST)


# --- Celery workers ---------------------------------------------------------------------------
class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def metrics_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ.get("PATH_INFO") != "/metrics" or not token_matches(
        environ.get("HTTP_AUTHORIZATION", "")
    ):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]
    body = render(system=False)
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [body]


_server: WSGIServer | None = None


def serve_worker_metrics(**_: Any) -> WSGIServer | None:
    """Receiver of Celery's ``worker_init``: in the worker's main process, serve the pool's
    samples on ``MIFUMO_METRICS_PORT`` (when it and the token are set) from a thread."""
    global _server
    port = settings.MIFUMO_METRICS_PORT
    if not port or not settings.MIFUMO_METRICS_TOKEN or _server is not None:
        return _server
    if not MULTIPROC_DIR:
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR is unset: the worker's metrics show only its main process"
        )
    _server = make_server("0.0.0.0", port, metrics_wsgi_app, handler_class=_QuietHandler)  # noqa: S104
    thread = threading.Thread(target=_server.serve_forever, name="metrics", daemon=True)
    thread.start()
    logger.info("worker metrics on port %s", port)
    return _server


def stop_worker_metrics() -> None:
    global _server
    if _server is not None:
        _server.shutdown()
        _server.server_close()
        _server = None
