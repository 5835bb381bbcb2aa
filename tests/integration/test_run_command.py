"""The README's run command, from a clean data directory, on the embedded defaults."""

import fcntl
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.common import free_port, start_dev_run

ROOT = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"mif_live_[0-9A-Za-z]{32}")


def call(url: str, key: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError as exc:
            last_error = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out; last error: {last_error}")


def live_members(pgid: int) -> list[str]:
    """Processes of a group that are still running (zombies waiting for a reaper are not)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(stat.parent.name)
    return members


def processes_using(path: Path) -> list[str]:
    """Live processes whose command line names ``path`` (the embedded servers name their
    data folder; they run in sessions of their own, outside the run's process group)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(path) in text and state != "Z":
            found.append(f"{cmdline.parent.name}: {text[:120]}")
    return found


def processes_of(var: Path) -> list[str]:
    """Live processes started for the run on ``var``: their environment names it (the web
    server, the worker and the scheduler run in sessions of their own)."""
    marker = f"MIFUMO_VAR_DIR={var}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            names = environ.read_bytes().split(b"\0")
            state = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in names and state != "Z" and int(environ.parent.name) != os.getpid():
            found.append(environ.parent.name)
    return found


def start_on_a_terminal(
    env: dict[str, str], port: int, log: Path
) -> tuple[Any, Callable[[], None]]:
    """``dev.py run`` on a terminal of its own (a pseudo-terminal it controls, as a shell's
    window gives), its output copied to ``log``; returns it and a function that closes the
    window (the terminal's master side, once nothing reads it any more: a read under way
    would keep it open)."""
    master, slave = os.openpty()

    def take_the_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [sys.executable, "dev.py", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=take_the_terminal,
    )
    os.close(slave)

    closing = threading.Event()

    def copy() -> None:
        with log.open("ab") as out:
            while not closing.is_set():
                if not select.select([master], [], [], 0.2)[0]:
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                out.write(chunk)
                out.flush()

    copier = threading.Thread(target=copy, daemon=True)
    copier.start()

    def close_the_window() -> None:
        closing.set()
        copier.join(5)
        os.close(master)

    return process, close_the_window


def stop_run(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Ctrl-C (the terminal signals the whole foreground group), or another signal to the
    group; fails when the run does not end by itself."""
    os.killpg(process.pid, sig)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        raise AssertionError(f"the run command did not stop on signal {sig}") from None


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_run_command_starts_its_own_servers_serves_the_demo_key_and_leaves_nothing_behind(
    tmp_path,
):
    """With DATABASE_URL and REDIS_URL unset: the embedded PostgreSQL and Redis, the demo key,
    a send delivered, a quiet console, Ctrl-C stopping everything, the same key on the second
    run, and nothing left running when the run is killed outright."""
    port = free_port()
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("MIFUMO_REQUIRE_SERVICES", None)
    env.update(
        MIFUMO_VAR_DIR=str(var),
        PYTHONUNBUFFERED="1",
        MIFUMO_VENV=str(Path(sys.prefix)),
        MIFUMO_SIMULATOR_DELAY="0.5",
    )
    log = tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}/api/integration/v1"
    process = start_dev_run(env, port, log)
    try:
        key = wait_for(lambda: KEY_RE.findall(log.read_text()), 240)[0]
        output = log.read_text()
        assert f"servers: PostgreSQL embedded in {var / 'postgres'}; Redis embedded in" in output
        assert (var / "postgres" / "PG_VERSION").is_file()
        assert processes_using(var / "postgres") and processes_using(var / "redis")
        balance = wait_for(lambda: call(f"{base}/sms/balance/", key), 60)
        assert balance["data"]["balance"] == 5000.0 and balance["data"]["currency"] == "TZS"
        sent = call(f"{base}/sms/send/", key, {"message": "Habari", "recipients": ["0712345678"]})
        message_id = sent["data"]["message_id"]

        def delivered():
            data = call(f"{base}/sms/status/{message_id}/", key)["data"]
            return data["status"] == "delivered" and data

        assert wait_for(delivered, 60)["delivery_time"].endswith("Z")
        time.sleep(5)  # beat's every-two-seconds entries, had they been logged
    finally:
        stop_run(process)
    output = log.read_text()
    # Quiet: the send's access line, no line for the polls, none from beat or the worker.
    assert "POST /api/integration/v1/sms/send/ 200" in output
    assert "GET /api/integration/v1/sms/status/" not in output
    assert "Sending due task" not in output and "succeeded in" not in output
    # Ctrl-C ends the run's processes and, after them, the servers.
    assert wait_for(lambda: not live_members(process.pid), 20)
    assert wait_for(lambda: not processes_using(var), 20), processes_using(var)
    assert "database system is shut down" in (var / "postgres" / "server.log").read_text()

    # The second run keeps the data and prints the same key; killed outright (no chance to
    # clean up), it still leaves no server and no process behind.
    second = start_dev_run(env, port, tmp_path / "run2.log")
    try:
        again = wait_for(lambda: KEY_RE.findall((tmp_path / "run2.log").read_text()), 240)[0]
        assert again == key
        wait_for(lambda: call(f"{base}/sms/balance/", key)["data"]["balance"] == 4990.0, 60)
    finally:
        second.kill()  # SIGKILL to dev.py alone
        second.wait(10)
    assert wait_for(lambda: not processes_using(var), 30), processes_using(var)
    assert wait_for(lambda: not live_members(second.pid), 30)
    assert wait_for(lambda: not processes_of(var), 40), processes_of(var)

    # A run whose terminal window is closed (a hang-up) stops everything it started.
    third, close_the_window = start_on_a_terminal(env, port, tmp_path / "run3.log")
    try:
        wait_for(lambda: KEY_RE.findall((tmp_path / "run3.log").read_text()), 240)
        wait_for(lambda: call(f"{base}/sms/balance/", key)["data"]["balance"] == 4990.0, 60)
        assert len(processes_of(var)) >= 4  # dev.py, honcho, the web server, the worker...
    finally:
        close_the_window()
    third.wait(60)
    assert wait_for(lambda: not processes_of(var), 40), processes_of(var)
    assert wait_for(lambda: not processes_using(var), 30), processes_using(var)


def refused_run(env: dict[str, str], port: int) -> str:
    """``dev.py run``'s output when it refuses to start: at once, before any server."""
    done = subprocess.run(
        [sys.executable, "dev.py", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stderr


def test_run_refuses_a_data_folder_another_run_uses_and_a_taken_port(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("MIFUMO_REQUIRE_SERVICES", None)
    env.update(MIFUMO_VAR_DIR=str(var), MIFUMO_VENV=str(Path(sys.prefix)))
    with (var / "run.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        said = refused_run(env, free_port())
    assert f"another `dev.py run` uses {var}: stop it first" in said
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        said = refused_run(env, port)
    assert f"cannot listen on 127.0.0.1:{port}" in said and "--port" in said
    assert not (var / "postgres").exists()  # refused before any server started
