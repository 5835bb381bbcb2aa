"""Sending's metrics: carrier submissions (``observe_carrier_submit``), recipient status
changes (``sms.signals.recipients_status_changed_batch``, counted after commit) and, at each
scrape, recipients by status. ``SmsConfig.ready()`` connects them; ``mifumo.metrics``
exposes them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sms.models import Recipient
from sms.signals import StatusChange

logger = logging.getLogger(__name__)

PENDING_STATUSES = ("scheduled", "queued", "submitting", "sent")
FINAL_STATUSES = ("delivered", "failed", "canceled")
# Final recipients only ever grow; counting the recent ones keeps the scrape an index range
# scan instead of a count of the whole table.
FINAL_WINDOW = timedelta(hours=1)

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


def on_status_changed(*, changes: Sequence[StatusChange], **_: Any) -> None:
    counts: dict[str, int] = {}
    for change in changes:
        status = str(change.status)
        counts[status] = counts.get(status, 0) + len(change.recipient_ids)

    def count() -> None:
        for status, number in counts.items():
            RECIPIENT_STATUS_CHANGES.labels(status).inc(number)

    # Counted once the change is committed: a rolled-back batch changed nothing.
    transaction.on_commit(count)


class RecipientsCollector(Collector):
    """Recipients by status, from the database."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._recipients()

    def _recipients(self) -> Iterable[GaugeMetricFamily]:
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
