"""The web service's launcher (``python -m mifumo.web``): its settings from the environment and
options, its refusals, its log format, and a real server replacing a worker that died and
finishing a request in flight when told to stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from integration.models import Account
from mifumo import web
from sms.models import Message
from tests.workers import database_url, wait_until


def test_the_shipped_defaults() -> None:
    srv = web.server([], {})
    assert (srv.bind_addr, srv.bind_port) == ("0.0.0.0", 8001)
    assert (srv.workers, srv.blocking_threads) == (2, 4)
    assert srv.target == "mifumo.wsgi:application"
    assert srv.interface == "wsgi"
    assert srv.respawn_failed_workers is True
    assert srv.workers_rss == 1024 * 1024 * 1024
    assert srv.log_access is False


def test_settings_come_from_the_environment_and_options_win() -> None:
    env = {
        "HOST": "127.0.0.1",
        "PORT": "9000",
        "WEB_WORKERS": "3",
        "WEB_THREADS": "6",
        "WEB_MAX_RSS_MB": "0",
    }
    srv = web.server([], env)
    assert (srv.bind_addr, srv.bind_port, srv.workers, srv.blocking_threads) == (
        "127.0.0.1",
        9000,
        3,
        6,
    )
    assert srv.workers_rss is None  # 0: never replaced for its memory
    srv = web.server(["--port", "9100", "--workers", "1", "--threads", "2"], env)
    assert (srv.bind_port, srv.workers, srv.blocking_threads) == (9100, 1, 2)


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["--workers", "0"], {}, "at least 1"),
        (["--threads", "0"], {}, "at least 1"),
        (["--max-rss-mb", "-1"], {}, "at least 0"),
        ([], {"LOG_LEVEL": "loud"}, "not a log level"),
        ([], {"LOG_FORMAT": "xml"}, "json or plain"),
        ([], {"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        (["--port", "eighty"], {}, "invalid int value"),
        ([], {"PORT": "eighty"}, "PORT must be a whole number, got 'eighty'"),
        ([], {"WEB_WORKERS": "2.5"}, "WEB_WORKERS must be a whole number"),
        ([], {"WEB_MAX_RSS_MB": "1G"}, "WEB_MAX_RSS_MB must be a whole number"),
    ],
)
def test_bad_settings_stop_it_with_a_message(
    argv: list[str], env: dict[str, str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        web.server(argv, env)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "formatter"),
    [
        ({"DEBUG": "false"}, "json"),
        ({"DEBUG": "true"}, "plain"),
        ({"DEBUG": "true", "LOG_FORMAT": "json"}, "json"),
        ({"DEBUG": "false", "LOG_FORMAT": "plain"}, "plain"),
    ],
)
def test_the_servers_own_lines_use_the_applications_format(
    env: dict[str, str], formatter: str
) -> None:
    config = web.server([], {**env, "LOG_LEVEL": "warning"}).log_config
    assert config is not None
    assert config["handlers"]["console"]["formatter"] == formatter
    assert config["loggers"]["_granian"]["level"] == logging.WARNING
    # Django writes the access line (with the request id): the server's own stays off.
    assert config["loggers"]["granian.access"]["handlers"] == []


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _master(port: str) -> int:
    """The launcher listening on ``port``: it leads its process group (the fixture starts it
    in a session of its own), its workers do not."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            is_web = b"mifumo.web" in (entry / "cmdline").read_bytes()
            on_port = f"PORT={port}".encode() in (entry / "environ").read_bytes().split(b"\0")
            leads = os.getpgid(pid) == pid
        except OSError:
            continue
        if is_web and on_port and leads:
            return pid
    raise AssertionError(f"no web server on port {port}")


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_dies_is_replaced(web_server: Callable[..., str]) -> None:
    base = web_server(WEB_WORKERS="2")
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200
    master = _master(base.rsplit(":", 1)[-1])
    workers = _children(master)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    wait_until(lambda: len(set(_children(master)) - set(workers)) == 1, timeout=30)
    answers = [httpx.get(base + "/healthz", timeout=10).status_code for _ in range(20)]
    assert answers == [200] * 20


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_a_request_in_flight_finish(
    alice: Account, alice_key: Any, web_server: Callable[..., str]
) -> None:
    base = web_server()
    master = _master(base.rsplit(":", 1)[-1])
    replies: list[httpx.Response] = []
    with psycopg.connect(database_url()) as holder:
        # The account's row held by this test: the send waits for it inside the server.
        held = sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE")
        holder.execute(held.format(sql.Identifier(Account._meta.db_table)), [alice.pk])
        sender = threading.Thread(
            target=lambda: replies.append(
                httpx.post(
                    base + "/api/integration/v1/sms/send/",
                    json={"message": "Habari", "recipients": ["+255712345678"]},
                    headers={"Authorization": f"Bearer {alice_key.raw}"},
                    timeout=60,
                )
            )
        )
        sender.start()
        wait_until(_a_request_waits_on_a_lock, timeout=30)
        os.kill(master, signal.SIGTERM)
        time.sleep(1.0)
        assert sender.is_alive() and not replies  # still waiting, not cut off
        holder.rollback()
    sender.join(30)
    assert [reply.status_code for reply in replies] == [200], replies[0].text if replies else ""
    assert Message.objects.filter(pk=replies[0].json()["data"]["message_id"]).exists()
    wait_until(lambda: _exited(master), timeout=30)


def _exited(pid: int) -> bool:
    """Gone, or a zombie its parent (the fixture's Popen) has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _a_request_waits_on_a_lock() -> bool:
    # A connection of its own: within a transaction pg_stat_activity keeps its first snapshot.
    with psycopg.connect(database_url(), autocommit=True) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])
