"""Prometheus metrics.

Counters and histograms are updated where things happen: requests (the request-id
middleware), balance movements and webhook attempts (model signals, after commit), recipient
status changes (``sms.signals.recipients_status_changed_batch``), carrier submissions
(``observe_carrier_submit``) and Celery task failures. Gauges that describe the system as a
whole (recipients by status, queue depths) are computed from PostgreSQL and Redis when
scraped, so they are right whichever process serves the scrape.

Processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (the container image sets it), every
process writes its samples to files there and a scrape adds them up, so one gunicorn
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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
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

from integration.signals import ledger_entry_recorded
from sms.signals import StatusChange, recipients_status_changed_batch
from webhooks.signals import attempts_recorded

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROC_DIR:
    # prometheus_client writes one file per process and metric type here.
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

PENDING_STATUSES = ("scheduled", "queued", "submitting", "sent")
FINAL_STATUSES = ("delivered", "failed", "canceled")
# Final recipients only ever grow; counting the recent ones keeps the scrape an index range
# scan instead of a count of the whole table.
FINAL_WINDOW = timedelta(hours=1)
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
CARRIER_SUBMIT_LATENCY = Histogram(
    "mifumo_carrier_submit_duration_seconds",
    "Time of one carrier call for a batch, by carrier",
    ["carrier"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
CARRIER_SUBMITTED = Counter(
    "mifumo_carrier_submissions",
    "Recipients offered to a carrier, by carrier and outcome (accepted, rejected)",
    ["carrier", "outcome"],
)
CARRIER_ERRORS = Counter(
    "mifumo_carrier_errors",
    "Carrier calls that failed as a whole, and recipient rejections, by carrier and code",
    ["carrier", "code"],
)
RECIPIENT_STATUS_CHANGES = Counter(
    "mifumo_recipient_status_changes",
    "Recipients moved to a status (sent, delivered, failed)",
    ["status"],
)
WEBHOOK_ATTEMPTS = Counter(
    "mifumo_webhook_attempts",
    "Webhook delivery attempts, by outcome (succeeded, failed)",
    ["outcome"],
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


class _SubmitObservation:
    def __init__(self, carrier: str) -> None:
        self.carrier = carrier
        self.results: Sequence[Any] | None = None

    def record(self, results: Sequence[Any]) -> None:
        self.results = results


def observe_carrier_submit(
    *,
    carrier: str,
    seconds: float,
    results: Sequence[Any] = (),
    error: BaseException | None = None,
) -> None:
    """One carrier call: its latency, the recipients it accepted and rejected (``results``
    are ``SubmitResult``s) and, when the call failed as a whole, the error's code."""
    CARRIER_SUBMIT_LATENCY.labels(carrier).observe(seconds)
    if error is not None:
        CARRIER_ERRORS.labels(carrier, str(getattr(error, "code", type(error).__name__))).inc()
    accepted = 0
    rejected: dict[str, int] = {}
    for result in results:
        if result.accepted:
            accepted += 1
        else:
            code = str(result.error_code or "REJECTED")
            rejected[code] = rejected.get(code, 0) + 1
    if accepted:
        CARRIER_SUBMITTED.labels(carrier, "accepted").inc(accepted)
    if rejected:
        CARRIER_SUBMITTED.labels(carrier, "rejected").inc(sum(rejected.values()))
        if error is None:
            for code, count in rejected.items():
                CARRIER_ERRORS.labels(carrier, code).inc(count)


@contextmanager
def carrier_submit(carrier: str) -> Iterator[_SubmitObservation]:
    """``with carrier_submit(name) as submit: submit.record(carrier.send_messages(batch))``
    times the call and counts its outcome; an exception escaping the block is counted as a
    failed call and raised again."""
    observation = _SubmitObservation(carrier)
    started = time.perf_counter()
    try:
        yield observation
    except BaseException as exc:
        observe_carrier_submit(carrier=carrier, seconds=time.perf_counter() - started, error=exc)
        raise
    observe_carrier_submit(
        carrier=carrier,
        seconds=time.perf_counter() - started,
        results=observation.results or (),
    )


def _on_status_changed(*, changes: Sequence[StatusChange], **_: Any) -> None:
    counts: dict[str, int] = {}
    for change in changes:
        status = str(change.status)
        counts[status] = counts.get(status, 0) + len(change.recipient_ids)

    def count() -> None:
        for status, number in counts.items():
            RECIPIENT_STATUS_CHANGES.labels(status).inc(number)

    # Counted once the change is committed: a rolled-back batch changed nothing.
    transaction.on_commit(count)


def _on_ledger_entry(*, entry: Any, **_: Any) -> None:
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


def _on_webhook_attempt(*, instance: Any, created: bool, **_: Any) -> None:
    if created:
        outcome = "succeeded" if instance.succeeded else "failed"
        transaction.on_commit(lambda: WEBHOOK_ATTEMPTS.labels(outcome).inc())


def _on_webhook_attempts_batch(*, succeeded: int, failed: int, **_: Any) -> None:
    def count() -> None:
        if succeeded:
            WEBHOOK_ATTEMPTS.labels("succeeded").inc(succeeded)
        if failed:
            WEBHOOK_ATTEMPTS.labels("failed").inc(failed)

    transaction.on_commit(count)


def count_task_failure(sender: Any = None, **_: Any) -> None:
    """Receiver of Celery's ``task_failure``."""
    TASK_FAILURES.labels(getattr(sender, "name", None) or str(sender)).inc()


recipients_status_changed_batch.connect(_on_status_changed, dispatch_uid="mifumo.metrics.status")
ledger_entry_recorded.connect(_on_ledger_entry, dispatch_uid="mifumo.metrics.ledger")
post_save.connect(
    _on_webhook_attempt, sender="webhooks.DeliveryAttempt", dispatch_uid="mifumo.metrics.webhook"
)
attempts_recorded.connect(_on_webhook_attempts_batch, dispatch_uid="mifumo.metrics.webhooks")


# --- computed at scrape -------------------------------------------------------------------------
def queue_names() -> list[str]:
    """The Celery queues: every routed one and the default."""
    from mifumo.celery import app

    names = {str(app.conf.task_default_queue)}
    routes = app.conf.task_routes or {}
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


class SystemCollector(Collector):
    """Recipients by status from the database and Celery queue depths from Redis."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._recipients()
        yield from self._queues()

    def _recipients(self) -> Iterable[GaugeMetricFamily]:
        from django.db.models import Count
        from django.utils import timezone

        from sms.models import Recipient

        pending = GaugeMetricFamily(
            "mifumo_recipients_pending",
            "Recipients not final yet, by status",
            labels=["status"],
        )
        recent = GaugeMetricFamily(
            "mifumo_recipients_final_recent",
            f"Recipients that reached a final status in the last {FINAL_WINDOW}, by status",
            labels=["status"],
        )
        try:
            counts = dict(
                Recipient.objects.filter(status__in=PENDING_STATUSES)
                .values_list("status")
                .annotate(n=Count("id"))
                .values_list("status", "n")
                .order_by()
            )
            since = timezone.now() - FINAL_WINDOW
            finished = dict(
                Recipient.objects.filter(status__in=FINAL_STATUSES, updated_at__gte=since)
                .values_list("status")
                .annotate(n=Count("id"))
                .values_list("status", "n")
                .order_by()
            )
        except Exception:  # noqa: BLE001 - a scrape reports what it can
            logger.warning("metrics: cannot count recipients", exc_info=True)
            return []
        for status in PENDING_STATUSES:
            pending.add_metric([status], counts.get(status, 0))
        for status in FINAL_STATUSES:
            recent.add_metric([status], finished.get(status, 0))
        return [pending, recent]

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
        registry.register(SystemCollector())
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
