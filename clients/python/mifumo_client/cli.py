"""``mifumo``: the Integration API from a shell.

Tables on a terminal, ``--json`` for scripts, and an exit code that says what failed
(``mifumo --help`` lists them). The key and URL come from ``--api-key``/``--url`` or
``MIFUMO_API_KEY``/``MIFUMO_URL``.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, cast

import click

from mifumo_client import errors
from mifumo_client._client import Mifumo
from mifumo_client._version import __version__
from mifumo_client.models import ImportResult, MessageStatus
from mifumo_client.webhooks import SUBSCRIBABLE_EVENTS

T = TypeVar("T")


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    REJECTED = 5
    BALANCE = 6
    RATE_LIMITED = 7
    SERVER = 8
    NETWORK = 9
    WAIT_TIMEOUT = 10


EXIT_CODE_MEANINGS = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "done, but the outcome failed: a message failed, import rows were refused",
    ExitCode.USAGE: "a wrong command line or configuration",
    ExitCode.AUTH: "the API key is missing, invalid, revoked or lacks the permission",
    ExitCode.NOT_FOUND: "no such message, inbound message, template, contact or other item",
    ExitCode.REJECTED: "the API refused the request as invalid (400, 405, 409, 413, 415)",
    ExitCode.BALANCE: "the balance is too low",
    ExitCode.RATE_LIMITED: "rate limited, after the retries",
    ExitCode.SERVER: "a server error (5xx) or an answer that is not the API's",
    ExitCode.NETWORK: "no answer: the server could not be reached or timed out",
    ExitCode.WAIT_TIMEOUT: "status --watch gave up before the message was final",
}
EXIT_CODES_HELP = "\n".join(f"{code.value:>2}  {text}" for code, text in EXIT_CODE_MEANINGS.items())

STATUS_COLOURS = {
    "delivered": "green",
    "succeeded": "green",
    "approved": "green",
    "active": "green",
    "failed": "red",
    "partially_delivered": "yellow",
    "rejected": "red",
    "revoked": "red",
    "expired": "red",
    "canceled": "bright_black",
}


def exit_code_for(error: errors.MifumoException) -> ExitCode:
    if isinstance(error, errors.MifumoConnectionError):
        return ExitCode.NETWORK
    if isinstance(error, errors.ConfigurationError):
        return ExitCode.USAGE
    if isinstance(error, errors.InvalidCredentialsError | errors.PermissionDeniedError):
        return ExitCode.AUTH
    if isinstance(error, errors.NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(error, errors.InsufficientBalanceError):
        return ExitCode.BALANCE
    if isinstance(error, errors.RateLimitError):
        return ExitCode.RATE_LIMITED
    if isinstance(error, errors.WaitTimeoutError):
        return ExitCode.WAIT_TIMEOUT
    if isinstance(error, errors.MifumoError) and error.status < 500 and error.error_code:
        return ExitCode.REJECTED
    return ExitCode.SERVER


# --- output ----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A result as JSON-ready data: dataclasses as objects, Decimal as numbers, times ISO."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.metadata.get("key", field.name): plain(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{key}={cell(item)}" for key, item in value.items()) or "-"
    return str(value)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _styled(text: str, raw: Any) -> str:
    colour = STATUS_COLOURS.get(raw) if isinstance(raw, str) else None
    return click.style(text, fg=colour) if colour else text


def table(rows: Sequence[Any], columns: Sequence[str], *, widest: int = 48) -> None:
    """Rows (dataclasses) as an aligned table of ``columns``."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[cell(getattr(row, name))[:widest] for name in columns] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns)]
    header = "  ".join(
        name.rstrip("_").upper().ljust(width) for name, width in zip(columns, widths, strict=True)
    )
    click.echo(click.style(header.rstrip(), bold=True))
    for row, line in zip(rows, cells, strict=True):
        parts = [
            _styled(text.ljust(width), getattr(row, name))
            for name, text, width in zip(columns, line, widths, strict=True)
        ]
        click.echo("  ".join(parts).rstrip())


def details(item: Any, fields: Sequence[str] | None = None) -> None:
    """One result as ``name  value`` lines."""
    names = fields or [field.name for field in dataclasses.fields(item)]
    width = max(len(name) for name in names)
    for name in names:
        value = getattr(item, name)
        click.echo(f"{click.style(name.ljust(width), bold=True)}  {_styled(cell(value), value)}")


class Output:
    """Where a command's result goes: a table for people, JSON for scripts."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def json(self, value: Any) -> None:
        click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False))

    def one(self, item: Any, fields: Sequence[str] | None = None) -> None:
        if self.as_json:
            self.json(item)
        else:
            details(item, fields)

    def many(self, items: Iterable[Any], columns: Sequence[str]) -> None:
        rows = list(items)
        if self.as_json:
            self.json(rows)
        else:
            table(rows, columns)


# --- the command group -----------------------------------------------------------------------


class State:
    def __init__(self) -> None:
        self.api_key: str | None = None
        self.url: str | None = None
        self.timeout = 30.0
        self.retries = 2
        self.as_json = False
        self._client: Mifumo | None = None

    @property
    def client(self) -> Mifumo:
        if self._client is None:
            self._client = Mifumo(
                self.api_key, self.url, timeout=self.timeout, max_retries=self.retries
            )
        return self._client

    @property
    def out(self) -> Output:
        return Output(self.as_json)


def fail(state: State | None, error: errors.MifumoException) -> NoReturn:
    code = exit_code_for(error)
    if state is not None and state.as_json:
        payload: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
        if isinstance(error, errors.MifumoError):
            payload.update(
                status=error.status,
                error_code=error.error_code,
                message=error.message,
                details=plain(error.details),
                request_id=error.request_id,
            )
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        click.echo(click.style(f"Error: {error}", fg="red"), err=True)
        if isinstance(error, errors.MifumoError):
            if error.details not in (None, {}, []):
                click.echo(
                    f"Details: {json.dumps(plain(error.details), ensure_ascii=False)}", err=True
                )
            if error.request_id:
                click.echo(f"Request id: {error.request_id}", err=True)
    sys.exit(code)


class MifumoGroup(click.Group):
    """A group whose commands turn the client's errors into messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.MifumoException as error:
            fail(ctx.find_object(State), error)


pass_state = click.make_pass_decorator(State)
F = TypeVar("F", bound=Callable[..., Any])


def json_option(command: F) -> F:
    """``--json`` after the command name too (``mifumo balance --json``)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.ensure_object(State).as_json = True
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=remember,
        is_eager=True,
        help="Print the result as JSON.",
    )(command)


def limited(items: Iterable[T], limit: int) -> Iterator[T]:
    return iter(items) if limit <= 0 else itertools.islice(items, limit)


def by_id(
    group: click.Group,
    name: str,
    argument: str,
    action: Callable[[Mifumo, Any], Any],
    help_text: str,
    *,
    kind: type = str,
) -> None:
    """Add to ``group`` the command ``NAME ARGUMENT`` that prints ``action(client, ARGUMENT)``."""

    @group.command(name, help=help_text)
    @click.argument(argument, type=kind)
    @json_option
    @pass_state
    def command(state: State, /, **arguments: Any) -> None:
        state.out.one(action(state.client, arguments[argument]))


limit_option = functools.partial(
    click.option, "--limit", type=int, show_default=True, help="At most this many (0: all)."
)


@click.group(
    cls=MifumoGroup,
    epilog=f"Exit codes:\n\n\b\n{EXIT_CODES_HELP}",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--api-key", envvar="MIFUMO_API_KEY", help="API key [env MIFUMO_API_KEY].")
@click.option(
    "--url", envvar="MIFUMO_URL", help="Server, e.g. http://127.0.0.1:8001 [env MIFUMO_URL]."
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per try.")
@click.option("--max-retries", type=int, default=2, show_default=True)
@json_option
@click.version_option(__version__, prog_name="mifumo")
@click.pass_context
def cli(
    ctx: click.Context, api_key: str | None, url: str | None, timeout: float, max_retries: int
) -> None:
    """Send SMS and manage a Mifumo account from the command line."""
    state = ctx.ensure_object(State)
    state.api_key, state.url, state.timeout, state.retries = api_key, url, timeout, max_retries
    ctx.call_on_close(lambda: state._client.close() if state._client else None)


def main() -> None:
    cli(prog_name="mifumo")


# --- SMS -------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def schedule_moment(value: str | None) -> str | None:
    """``--at``: ISO 8601 with a zone, or from now: +30m, +2h, +1d."""
    if value is None:
        return None
    relative = _RELATIVE.match(value.strip())
    if relative:
        delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return (datetime.now(UTC) + delta).isoformat(timespec="seconds").replace("+00:00", "Z")
    return value


SEND_FIELDS = [
    "message_id",
    "status",
    "recipients",
    "cost",
    "currency",
    "segments",
    "encoding",
    "sender_id",
    "schedule_time",
    "test",
    "skipped",
    "replayed",
]


def key_values(option: str, pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict (a later KEY wins)."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        values[key.strip()] = value
    return values


@cli.command()
@click.argument("text", required=False)
@click.option("--to", "recipients", multiple=True, help="A phone number (repeat for more).")
@click.option("--segment", "segments", multiple=True, help="A segment id (repeat for more).")
@click.option("--template", "template_id", help="Send this template (tpl_...) instead of TEXT.")
@click.option(
    "--var", "variables", multiple=True, metavar="KEY=VALUE", help="A placeholder's value."
)
@click.option("--reply-to", help="Answer this inbound message (inb_...), from its number.")
@click.option("--sender", help="An approved sender ID [MIFUMO].")
@click.option("--at", "at", help="When: ISO 8601 with a zone, or +30m, +2h, +1d.")
@click.option("--webhook-url", help="Receives this message's status events.")
@click.option("--idempotency-key", help="Makes a repeated command send only once.")
@json_option
@pass_state
def send(
    state: State,
    text: str | None,
    recipients: tuple[str, ...],
    segments: tuple[str, ...],
    template_id: str | None,
    variables: tuple[str, ...],
    reply_to: str | None,
    sender: str | None,
    at: str | None,
    webhook_url: str | None,
    idempotency_key: str | None,
) -> None:
    """Send TEXT (or --template) to the --to numbers and --segment members, or with
    --reply-to alone to the inbound message's sender. The text may hold placeholders:
    {{name}}, {{phone}}, {{KEY}} (a --var or the contact's custom field), {{KEY|default}}."""
    if (text is None) == (template_id is None):
        raise click.UsageError("give TEXT or --template, not both")
    if not recipients and not segments and reply_to is None:
        raise click.UsageError("give at least one --to, --segment or --reply-to")
    result = state.client.sms.send(
        text,
        recipients,
        template_id=template_id,
        variables=key_values("--var", variables),
        reply_to=reply_to,
        sender_id=sender,
        schedule_time=schedule_moment(at),
        segment_ids=segments,
        webhook_url=webhook_url,
        idempotency_key=idempotency_key,
    )
    state.out.one(result, SEND_FIELDS)


RECIPIENT_COLUMNS = ["phone", "status", "sent_at", "delivery_time", "error_code", "cost", "text"]
STATUS_FIELDS = [
    "message_id",
    "status",
    "counts",
    "recipient_count",
    "sender_id",
    "cost",
    "refunded",
    "currency",
    "segments",
    "encoding",
    "created_at",
    "schedule_time",
    "delivery_time",
]


def _progress_line(status: MessageStatus, started: float) -> str:
    counts = " ".join(f"{name} {count}" for name, count in sorted(status.counts.items()))
    return (
        f"{status.message_id}  {_styled(status.status, status.status)}  "
        f"[{counts or 'no recipients yet'}]  {time.monotonic() - started:.0f}s"
    )


def _watch(state: State, message_id: str, interval: float, timeout: float) -> MessageStatus:
    started = time.monotonic()
    on_terminal = sys.stderr.isatty()
    seen: list[tuple[str, dict[str, int]]] = []

    def show(status: MessageStatus) -> None:
        line = _progress_line(status, started)
        if on_terminal:
            click.echo(f"\r\x1b[2K{line}", nl=False, err=True)
        elif not seen or seen[-1] != (status.status, status.counts):
            click.echo(line, err=True)
        seen.append((status.status, status.counts))

    try:
        return state.client.sms.wait(message_id, timeout=timeout, interval=interval, on_update=show)
    finally:
        if on_terminal:
            click.echo("", err=True)


@cli.command()
@click.argument("message_id")
@click.option("--watch", is_flag=True, help="Follow the message until its status is final.")
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="Seconds between polls."
)
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Give up after this.")
@limit_option(default=100)
@json_option
@pass_state
def status(
    state: State, message_id: str, watch: bool, interval: float, timeout: float, limit: int
) -> None:
    """A message's status and recipients. With --watch, exit 0 when delivered (or canceled),
    1 when failed or partially delivered, 10 when --timeout passes first."""
    if watch:
        _watch(state, message_id, interval, timeout)
    current = state.client.sms.status(message_id, per_page=1)
    recipients = list(limited(state.client.sms.recipients(message_id), limit))
    if state.as_json:
        state.out.json({**plain(current), "recipients": plain(recipients)})
    else:
        details(current, STATUS_FIELDS)
        click.echo()
        table(recipients, RECIPIENT_COLUMNS)
    if watch and current.status in ("failed", "partially_delivered"):
        sys.exit(ExitCode.FAILED)


by_id(
    cli,
    "cancel",
    "message_id",
    lambda client, id_: client.sms.cancel(id_),
    "Cancel a scheduled message (its cost is refunded).",
)


@cli.command()
@json_option
@pass_state
def balance(state: State) -> None:
    """The account's balance."""
    state.out.one(state.client.balance())


MESSAGE_COLUMNS = [
    "message_id",
    "status",
    "created_at",
    "sender_id",
    "recipient_count",
    "cost",
    "refunded",
    "text",
]


@cli.command()
@click.option("--since", help="Created on or after (a date or ISO 8601).")
@click.option("--until", help="Created on or before (a date or ISO 8601).")
@click.option("--sender", help="Only this sender ID.")
@click.option("--phone", help="Only messages to this number.")
@limit_option(default=20)
@json_option
@pass_state
def messages(
    state: State,
    since: str | None,
    until: str | None,
    sender: str | None,
    phone: str | None,
    limit: int,
) -> None:
    """Messages, newest first."""
    rows = state.client.sms.messages(
        start_date=since, end_date=until, sender_id=sender, phone=phone
    )
    state.out.many(limited(rows, limit), MESSAGE_COLUMNS)


REPORT_COLUMNS = [
    "message_id",
    "phone",
    "status",
    "sender_id",
    "sent_at",
    "delivery_time",
    "error_code",
    "cost",
    "currency",
    "created_at",
]


@cli.command()
@click.option(
    "--status",
    type=click.Choice(
        ["scheduled", "queued", "submitting", "sent", "delivered", "failed", "canceled"]
    ),
    help="Only recipients in this status.",
)
@click.option("--since", help="Messages created on or after (a date or ISO 8601).")
@click.option("--until", help="Messages created on or before (a date or ISO 8601).")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (every column) to stdout.")
@limit_option(default=50)
@json_option
@pass_state
def reports(
    state: State,
    status: str | None,
    since: str | None,
    until: str | None,
    as_csv: bool,
    limit: int,
) -> None:
    """Delivery reports: one row per recipient, newest first."""
    rows = limited(
        state.client.sms.delivery_reports(start_date=since, end_date=until, status=status), limit
    )
    if not as_csv:
        state.out.many(rows, REPORT_COLUMNS[:8])
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(getattr(row, name)) for name in REPORT_COLUMNS])


@cli.group("sender-ids", cls=MifumoGroup)
def sender_ids() -> None:
    """Sender IDs."""


@sender_ids.command("list")
@json_option
@pass_state
def sender_ids_list(state: State) -> None:
    """The account's sender IDs."""
    rows = state.client.sms.sender_ids()
    state.out.many(rows, ["sender_id", "status", "purpose", "created_at", "reviewed_at"])


@sender_ids.command("request")
@click.argument("sender_id")
@click.option("--purpose", default="", help="What it is for.")
@json_option
@pass_state
def sender_ids_request(state: State, sender_id: str, purpose: str) -> None:
    """Ask for SENDER_ID; it can be used once an operator approves it."""
    state.out.one(state.client.sms.request_sender_id(sender_id, purpose=purpose))


# --- contacts and segments -------------------------------------------------------------------

CONTACT_COLUMNS = ["id", "name", "phone_number", "email", "tags", "is_active", "opted_out"]


@cli.group(cls=MifumoGroup)
def contacts() -> None:
    """Contacts: search, change, import and export."""


@contacts.command("list")
@click.argument("query", required=False, default="")
@click.option("--segment", help="Only members of this segment.")
@limit_option(default=50)
@json_option
@pass_state
def contacts_list(state: State, query: str, segment: str | None, limit: int) -> None:
    """Contacts matching QUERY (name, email or phone), newest first; all without it."""
    rows = state.client.contacts.search(query, segment_id=segment)
    state.out.many(limited(rows, limit), CONTACT_COLUMNS)


by_id(contacts, "get", "contact_id", lambda client, id_: client.contacts.get(id_), "One contact.")


@contacts.command("create")
@click.argument("name")
@click.argument("phone")
@click.option("--email")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@click.option("--inactive", is_flag=True)
@click.option(
    "--field", "fields", multiple=True, metavar="KEY=VALUE", help="A custom field (repeat)."
)
@json_option
@pass_state
def contacts_create(
    state: State,
    name: str,
    phone: str,
    email: str | None,
    tags: tuple[str, ...],
    inactive: bool,
    fields: tuple[str, ...],
) -> None:
    """A new contact."""
    contact = state.client.contacts.create(
        name,
        phone,
        email=email,
        tags=tags,
        is_active=not inactive,
        custom_fields=key_values("--field", fields),
    )
    state.out.one(contact)


@contacts.command("update")
@click.argument("contact_id")
@click.option("--name")
@click.option("--phone")
@click.option("--email")
@click.option("--tag", "tags", multiple=True, help="Replaces the tags (repeat for more).")
@click.option("--active/--inactive", default=None)
@click.option(
    "--field", "fields", multiple=True, metavar="KEY=VALUE", help="Set a custom field (repeat)."
)
@click.option("--unset-field", "unset", multiple=True, metavar="KEY", help="Remove a custom field.")
@json_option
@pass_state
def contacts_update(
    state: State,
    contact_id: str,
    name: str | None,
    phone: str | None,
    email: str | None,
    tags: tuple[str, ...],
    active: bool | None,
    fields: tuple[str, ...],
    unset: tuple[str, ...],
) -> None:
    """Change the fields given; custom fields not named stay as they are."""
    custom: dict[str, str | None] = {**key_values("--field", fields), **dict.fromkeys(unset)}
    changes: dict[str, Any] = {
        "name": name,
        "phone_number": phone,
        "email": email,
        "tags": list(tags) or None,
        "is_active": active,
        "custom_fields": custom or None,
    }
    given = {field: value for field, value in changes.items() if value is not None}
    if not given:
        raise click.UsageError("nothing to change")
    state.out.one(state.client.contacts.update(contact_id, **given))


by_id(
    contacts,
    "delete",
    "contact_id",
    lambda client, id_: client.contacts.delete(id_),
    "Delete a contact.",
)


by_id(
    contacts,
    "opt-out",
    "contact_id",
    lambda client, id_: client.contacts.opt_out(id_),
    "Opt a contact out of messages.",
)


by_id(
    contacts,
    "opt-in",
    "contact_id",
    lambda client, id_: client.contacts.opt_in(id_),
    "Opt a contact back in.",
)


def _print_import(state: State, result: ImportResult) -> None:
    if state.as_json:
        state.out.json(result)
        return
    details(
        result,
        [
            *("created", "updated", "skipped", "failed", "ignored_columns"),
            *("opted_out", "opted_in", "left_opted_out"),
        ],
    )
    if result.errors:
        click.echo()
        table(result.errors, ["row", "field", "reason"], widest=90)
        if result.errors_truncated:
            click.echo("(more errors than the server lists)")


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--on-duplicate",
    type=click.Choice(["skip", "update"]),
    default="skip",
    show_default=True,
    help="A row whose phone is already a contact: skip it or update the contact.",
)
@json_option
@pass_state
def contacts_import(state: State, file: Path, on_duplicate: str) -> None:
    """Import contacts from a CSV FILE (name, phone_number, email, tags, is_active).
    Exit 1 when some rows were refused (they are listed)."""
    with click.progressbar(length=1, label="Uploading", file=sys.stderr) as bar:

        def progress(sent: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(sent - bar.pos)
            if sent >= total:
                bar.label = "Importing"

        result = state.client.contacts.import_csv(
            file,
            on_duplicate=cast(Literal["skip", "update"], on_duplicate),
            progress=progress,
        )
    _print_import(state, result)
    if result.failed:
        sys.exit(ExitCode.FAILED)


@contacts.command("export")
@click.option("--segment", help="Only members of this segment.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File.")
@pass_state
def contacts_export(state: State, segment: str | None, output: Path | None) -> None:
    """Contacts as CSV (the import format), to stdout or --output."""
    text = state.client.contacts.export_csv(segment_id=segment)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{max(text.count(chr(10)) - 1, 0)} contacts written to {output}", err=True)


# --- templates and inbound messages ---------------------------------------------------------

TEMPLATE_COLUMNS = ["id", "name", "placeholders", "text"]


@cli.group(cls=MifumoGroup)
def templates() -> None:
    """Message templates: reusable texts with placeholders."""


@templates.command("list")
@limit_option(default=100)
@json_option
@pass_state
def templates_list(state: State, limit: int) -> None:
    """The account's templates, newest first."""
    state.out.many(limited(state.client.templates.list(), limit), TEMPLATE_COLUMNS)


by_id(
    templates, "get", "template_id", lambda client, id_: client.templates.get(id_), "One template."
)


@templates.command("create")
@click.argument("name")
@click.argument("text")
@json_option
@pass_state
def templates_create(state: State, name: str, text: str) -> None:
    """A new template; TEXT may hold {{name}}, {{phone}}, {{KEY}} and {{KEY|default}}."""
    state.out.one(state.client.templates.create(name, text))


@templates.command("update")
@click.argument("template_id")
@click.option("--name")
@click.option("--text")
@json_option
@pass_state
def templates_update(state: State, template_id: str, name: str | None, text: str | None) -> None:
    """Change the name or the text."""
    given = {field: value for field, value in {"name": name, "text": text}.items() if value}
    if not given:
        raise click.UsageError("nothing to change")
    state.out.one(state.client.templates.update(template_id, **given))


by_id(
    templates,
    "delete",
    "template_id",
    lambda client, id_: client.templates.delete(id_),
    "Delete a template.",
)


INBOUND_COLUMNS = ["inbound_id", "received_at", "from_", "to", "action", "text"]


@cli.group(cls=MifumoGroup)
def inbound() -> None:
    """Inbound messages: what the account's numbers received."""


@inbound.command("list")
@click.option("--from", "sender", help="Only from this phone.")
@click.option("--to", help="Only to this number of the account.")
@click.option("--keyword", help="Only with this routing keyword.")
@click.option("--action", type=click.Choice(["opt_out", "opt_in", "help"]))
@click.option("--since", help="From this date or time (ISO 8601).")
@click.option("--until", help="Up to this date (the whole day) or time.")
@limit_option(default=50)
@json_option
@pass_state
def inbound_list(
    state: State,
    sender: str | None,
    to: str | None,
    keyword: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """Inbound messages, newest first."""
    rows = state.client.inbound.list(
        from_=sender, to=to, keyword=keyword, action=action, start_date=since, end_date=until
    )
    state.out.many(limited(rows, limit), INBOUND_COLUMNS)


by_id(
    inbound,
    "get",
    "inbound_id",
    lambda client, id_: client.inbound.get(id_),
    "One inbound message.",
)


@inbound.command("simulate")
@click.argument("sender")
@click.argument("to")
@click.argument("text")
@json_option
@pass_state
def inbound_simulate(state: State, sender: str, to: str, text: str) -> None:
    """Receive TEXT from SENDER on the account's number TO, as a carrier would deliver it
    (test keys only)."""
    state.out.one(state.client.inbound.simulate(sender, to, text))


SEGMENT_COLUMNS = ["id", "name", "contact_count", "criteria", "description"]


@cli.group(cls=MifumoGroup)
def segments() -> None:
    """Segments: saved filters over contacts."""


@segments.command("list")
@limit_option(default=100)
@json_option
@pass_state
def segments_list(state: State, limit: int) -> None:
    """Every segment with its contact count."""
    state.out.many(limited(state.client.segments.list(), limit), SEGMENT_COLUMNS)


by_id(segments, "get", "segment_id", lambda client, id_: client.segments.get(id_), "One segment.")


def _criteria(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        criteria = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--criteria") from None
    if not isinstance(criteria, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--criteria")
    return criteria


@segments.command("create")
@click.argument("name")
@click.option("--criteria", help='JSON, e.g. \'{"tags": ["vip"], "is_active": true}\'.')
@click.option("--description", default="")
@json_option
@pass_state
def segments_create(state: State, name: str, criteria: str | None, description: str) -> None:
    """A new segment."""
    segment = state.client.segments.create(
        name, criteria=_criteria(criteria), description=description
    )
    state.out.one(segment)


by_id(
    segments,
    "delete",
    "segment_id",
    lambda client, id_: client.segments.delete(id_),
    "Delete a segment (its contacts stay).",
)


@segments.command("contacts")
@click.argument("segment_id")
@limit_option(default=50)
@json_option
@pass_state
def segments_contacts(state: State, segment_id: str, limit: int) -> None:
    """A segment's contacts."""
    rows = state.client.segments.contacts(segment_id)
    state.out.many(limited(rows, limit), CONTACT_COLUMNS)


# --- API keys --------------------------------------------------------------------------------

KEY_COLUMNS = ["id", "name", "prefix", "mode", "status", "permissions", "last_used_at"]


@cli.group(cls=MifumoGroup)
def keys() -> None:
    """API keys (admin keys only)."""


@keys.command("list")
@json_option
@pass_state
def keys_list(state: State) -> None:
    """The account's keys."""
    state.out.many(state.client.keys.list(), KEY_COLUMNS)


@keys.command("create")
@click.argument("name")
@click.option(
    "--permissions",
    type=click.Choice(["read", "write", "admin"]),
    default="write",
    show_default=True,
)
@click.option("--test", is_flag=True, help="A mif_test_ key: the simulator, no charge.")
@json_option
@pass_state
def keys_create(state: State, name: str, permissions: str, test: bool) -> None:
    """A new key; the raw key is printed once."""
    level = cast(Literal["read", "write", "admin"], permissions)
    state.out.one(state.client.keys.create(name, permissions=level, test=test))


by_id(
    keys,
    "revoke",
    "key_id",
    lambda client, id_: client.keys.revoke(id_),
    "Revoke a key: it stops working at once.",
    kind=int,
)


by_id(
    keys,
    "rotate",
    "key_id",
    lambda client, id_: client.keys.rotate(id_),
    "A new key (a new id) replaces a key; the old one stops working.",
    kind=int,
)


# --- webhooks --------------------------------------------------------------------------------

WEBHOOK_COLUMNS = ["id", "url", "events", "active", "disabled_reason", "description"]
DELIVERY_COLUMNS = [
    "id",
    "event",
    "message_id",
    "status",
    "attempts",
    "last_status_code",
    "url",
    "created_at",
]
EVENT_CHOICE = click.Choice(SUBSCRIBABLE_EVENTS)


@cli.group(cls=MifumoGroup)
def webhooks() -> None:
    """Webhook endpoints and deliveries."""


@webhooks.command("list")
@json_option
@pass_state
def webhooks_list(state: State) -> None:
    """The account's endpoints."""
    state.out.many(state.client.webhooks.list(), WEBHOOK_COLUMNS)


by_id(webhooks, "get", "webhook_id", lambda client, id_: client.webhooks.get(id_), "One endpoint.")


@webhooks.command("create")
@click.argument("url")
@click.option("--event", "events", multiple=True, type=EVENT_CHOICE, help="Repeat; all if none.")
@click.option("--description", default="")
@click.option("--inactive", is_flag=True)
@json_option
@pass_state
def webhooks_create(
    state: State, url: str, events: tuple[str, ...], description: str, inactive: bool
) -> None:
    """A new endpoint; its signing secret is printed once."""
    endpoint = state.client.webhooks.create(
        url, events=events or None, active=not inactive, description=description
    )
    state.out.one(endpoint)


by_id(
    webhooks,
    "enable",
    "webhook_id",
    lambda client, id_: client.webhooks.update(id_, active=True),
    "Turn an endpoint (back) on.",
)


by_id(
    webhooks,
    "disable",
    "webhook_id",
    lambda client, id_: client.webhooks.update(id_, active=False),
    "Stop sending to an endpoint.",
)


by_id(
    webhooks,
    "delete",
    "webhook_id",
    lambda client, id_: client.webhooks.delete(id_),
    "Delete an endpoint and its deliveries.",
)


@webhooks.command("test")
@click.argument("webhook_id")
@json_option
@pass_state
def webhooks_test(state: State, webhook_id: str) -> None:
    """Send a message.test event now; exit 1 when the endpoint did not accept it."""
    delivery = state.client.webhooks.test(webhook_id)
    state.out.one(delivery, [*DELIVERY_COLUMNS, "latency_ms", "error", "response"])
    if delivery.status != "succeeded":
        sys.exit(ExitCode.FAILED)


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@click.option("--grace", type=int, help="Seconds the old secret keeps signing [86400].")
@json_option
@pass_state
def webhooks_rotate_secret(state: State, webhook_id: str, grace: int | None) -> None:
    """A new signing secret for an endpoint (printed once)."""
    state.out.one(state.client.webhooks.rotate_secret(webhook_id, grace_period_seconds=grace))


@webhooks.command("deliveries")
@click.option("--webhook", "webhook_id", help="Only this endpoint's.")
@click.option("--message", "message_id", help="Only this message's.")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]))
@limit_option(default=50)
@json_option
@pass_state
def webhooks_deliveries(
    state: State, webhook_id: str | None, message_id: str | None, status: str | None, limit: int
) -> None:
    """Deliveries, newest first."""
    if webhook_id and message_id:
        raise click.UsageError("give --webhook or --message, not both")
    rows = state.client.webhooks.deliveries(
        webhook_id=webhook_id, message_id=message_id, status=status
    )
    state.out.many(limited(rows, limit), DELIVERY_COLUMNS)


@webhooks.command("delivery")
@click.argument("delivery_id")
@json_option
@pass_state
def webhooks_delivery(state: State, delivery_id: str) -> None:
    """One delivery with every attempt."""
    delivery = state.client.webhooks.delivery(delivery_id)
    if state.as_json:
        state.out.json(delivery)
        return
    details(delivery, [*DELIVERY_COLUMNS, "webhook_id", "error", "completed_at"])
    click.echo()
    table(delivery.attempt_log, ["number", "started_at", "status_code", "latency_ms", "error"])


by_id(
    webhooks,
    "redeliver",
    "delivery_id",
    lambda client, id_: client.webhooks.redeliver(id_),
    "Send a finished delivery's event again.",
)


@webhooks.command("signing-secret")
@click.option("--rotate", is_flag=True, help="Make a new one first.")
@json_option
@pass_state
def webhooks_signing_secret(state: State, rotate: bool) -> None:
    """The account's secret for deliveries to a message's own --webhook-url."""
    hooks = state.client.webhooks
    state.out.one(hooks.rotate_signing_secret() if rotate else hooks.signing_secret())


if __name__ == "__main__":
    main()
