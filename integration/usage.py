"""Buffered API usage log: rows are collected in memory and written with one COPY every
few seconds by a thread of the process (or by a request, when a thousand are waiting), so
logging costs a request almost nothing."""

from __future__ import annotations

import atexit
import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

from integration.models import ApiRequestLog
from mifumo.db import copy_rows

logger = logging.getLogger(__name__)


# Every column but the id, by attribute name.
FIELDS = (
    "account_id",
    "api_key_id",
    "method",
    "route",
    "status_code",
    "latency_ms",
    "error_code",
    "created_at",
)


class UsageBuffer:
    def __init__(self) -> None:
        self._rows: list[ApiRequestLog] = []
        self._lock = threading.Lock()
        self._timer: threading.Thread | None = None

    def add(self, row: ApiRequestLog) -> None:
        with self._lock:
            self._rows.append(row)
            # The timer thread writes every few seconds; a request writes only when rows pile
            # up past the size limit, so the batch insert stays off the requests' latency.
            due = len(self._rows) >= settings.MIFUMO_USAGE_LOG_FLUSH_SIZE
        if due:
            self.flush()
        else:
            self._ensure_timer()

    def flush(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            copy_rows(ApiRequestLog, FIELDS, ([getattr(row, f) for f in FIELDS] for row in rows))
        except Exception:  # noqa: BLE001 - losing usage rows must never fail a request
            logger.warning("could not write %d usage rows", len(rows), exc_info=True)
            return 0
        return len(rows)

    def _ensure_timer(self) -> None:
        # A quiet process still writes its last rows within a few seconds.
        with self._lock:
            if self._timer is not None:
                return
            timer = self._timer = threading.Thread(
                target=self._run_timer, name="usage-flush", daemon=True
            )
        timer.start()

    def _run_timer(self) -> None:
        try:
            while True:
                time.sleep(settings.MIFUMO_USAGE_LOG_FLUSH_SECONDS)
                with self._lock:
                    if not self._rows:
                        # Decided under the lock: a row added after this starts a new timer.
                        self._timer = None
                        return
                self.flush()
                close_old_connections()
        finally:
            # The thread's own database connection ends with it.
            connections.close_all()


buffer = UsageBuffer()
atexit.register(buffer.flush)
