"""Logging: one JSON object per line (``LOG_FORMAT=json``) or plain text, both carrying the
id of the request or Celery task being served, and the access line of every request.

Nothing here needs Django set up or Celery imported: the web server's master process formats
its own records with ``JsonFormatter`` before any Django setting is loaded.
"""

from __future__ import annotations

import json
import logging
import reprlib
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

from mifumo.client_ip import client_address
from mifumo.secret_paths import loggable_path

if TYPE_CHECKING:
    from django.http import HttpRequest

# Left out of the JSON extras: the standard attributes, and Django's ``request`` object, whose
# repr carries the query string (receipt endpoints authenticate with a token there).
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "request",
}
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

access_logger = logging.getLogger("mifumo.access")
task_logger = logging.getLogger("mifumo.tasks")

_args_repr = reprlib.Repr()
_args_repr.maxstring = 80
_args_repr.maxother = 80
_args_repr.maxlist = 5
_args_repr.maxtuple = 5
_args_repr.maxdict = 5
_args_repr.maxlevel = 3


def current_request_id() -> str | None:
    # Until the middleware module is loaded no request can be in flight, and importing it
    # here would drag Django into processes that format records before settings exist.
    module = sys.modules.get("mifumo.api.middleware")
    if module is None:
        return None
    value: str | None = module.request_id_var.get()
    return value


def _current_task() -> tuple[str | None, str | None]:
    if "celery" not in sys.modules:
        return None, None
    from celery import current_task

    if not current_task or current_task.request is None:
        return None, None
    return current_task.name, current_task.request.id


def record_request_id(record: logging.LogRecord) -> str | None:
    """The id of the request a record belongs to. Django logs 4xx and 5xx responses after
    the middleware has finished, but hands the request over on the record."""
    explicit = getattr(record, "request_id", None)
    if explicit not in (None, "-"):
        return str(explicit)
    return current_request_id() or getattr(getattr(record, "request", None), "request_id", None)


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record ("-" outside a request) for the plain format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = record_request_id(record) or "-"
        return True


class SecretPathFilter(logging.Filter):
    """Django's own records of an answer (a refused CSRF token, a 5xx) name the request's
    path, escaped; for a route whose path holds a secret, they name its loggable form
    instead (``mifumo.secret_paths``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if request is None or not path or not isinstance(record.args, tuple):
            return True
        shown = loggable_path(request)
        if shown != path:
            record.args = tuple(_replace_path(arg, path, shown) for arg in record.args)
        return True


def _replace_path(arg: object, path: str, shown: str) -> object:
    if not isinstance(arg, str):
        return arg
    escaped = path.encode("unicode_escape").decode("ascii")
    return arg.replace(path, shown).replace(escaped, shown)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id, then the Celery task, any ``extra`` fields
    and the formatted exception."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = record_request_id(record)
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id,
        }
        task_name, task_id = _current_task()
        if task_id:
            payload["task_name"] = task_name
            payload["task_id"] = task_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _send_path() -> str:
    return f"{settings.MIFUMO_API_PREFIX}sms/send/"


def log_request(request: HttpRequest, *, status: int, seconds: float, route: str) -> None:
    """The access line of one request; successful probes and scrapes are left out. A secret
    in the path (a mailed link's token) is not written (``mifumo.secret_paths``)."""
    if request.path in _QUIET_PATHS and status < 400:
        return
    if (
        status < 400
        and getattr(settings, "MIFUMO_ACCESS_LOG", "all") == "sends"
        and not (request.method == "POST" and request.path == _send_path())
    ):
        return
    if not access_logger.isEnabledFor(logging.INFO):
        return
    method = request.method or "GET"
    path = loggable_path(request)
    access_logger.info(
        "%s %s %s %.1fms",
        method,
        path,
        status,
        seconds * 1000,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "route": route,
            "client": client_address(request),
            # On the record itself, so a handler that formats later still has it.
            "request_id": getattr(request, "request_id", None) or current_request_id(),
        },
    )


def summarize_args(args: Any, kwargs: Any) -> str:
    """A bounded repr of a task's arguments: a 10,000-recipient list stays one short line."""
    return f"args={_args_repr.repr(tuple(args or ()))} kwargs={_args_repr.repr(dict(kwargs or {}))}"


def log_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """Receiver of Celery's ``task_failure``: the task, its id and its arguments with the
    traceback, so that one line says what failed on which input."""
    name = getattr(sender, "name", None) or str(sender)
    exc_info: Any = None
    if exception is not None and exception.__traceback__ is not None:
        exc_info = (type(exception), exception, exception.__traceback__)
    elif einfo is not None:
        exc_info = getattr(einfo, "exc_info", None)
    summary = summarize_args(args, kwargs)
    task_logger.error(
        "task %s[%s] failed: %r (%s)",
        name,
        task_id,
        exception,
        summary,
        exc_info=exc_info,
        extra={
            "task_name": name,
            "task_id": task_id,
            "task_args": summary,
            "exception_type": type(exception).__name__ if exception is not None else None,
        },
    )


def keep_django_logging(**_: Any) -> None:
    """Receiver of Celery's ``setup_logging``: Django already configured logging from
    ``settings.LOGGING`` when the worker loaded it, and a connected receiver stops Celery from
    replacing that with its own format."""
