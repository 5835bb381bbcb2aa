"""The README's run command, from a clean data directory, on the embedded defaults."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"mif_live_[0-9A-Za-z]{32}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.mark.slow
def test_run_command_serves_the_balance_curl_and_delivers_through_the_simulator(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        MIFUMO_VAR_DIR=str(tmp_path / "var"),
        PYTHONUNBUFFERED="1",
        MIFUMO_VENV=str(Path(sys.prefix)),
        MIFUMO_SIMULATOR_DELAY="0.5",
    )
    log = (tmp_path / "run.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "dev.py", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/integration/v1"
    try:
        key = wait_for(lambda: KEY_RE.findall(Path(log.name).read_text()), 180)[0]
        balance = wait_for(lambda: call(f"{base}/sms/balance/", key), 60)
        assert balance["success"] is True
        assert balance["data"]["balance"] == 5000.0 and balance["data"]["currency"] == "TZS"
        sent = call(
            f"{base}/sms/send/",
            key,
            {"message": "Habari", "recipients": ["0712345678"], "sender_id": "MIFUMO"},
        )
        message_id = sent["data"]["message_id"]

        def delivered():
            data = call(f"{base}/sms/status/{message_id}/", key)["data"]
            return data["status"] == "delivered" and data

        status = wait_for(delivered, 60)
        assert status["delivery_time"].endswith("Z")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
            raise AssertionError("the run command did not stop on Ctrl-C") from None

    # Ctrl-C reaches the whole process group; nothing of it may be left running.
    def group_gone():
        return not live_members(process.pid)

    assert wait_for(group_gone, 20)
    # A second run keeps the data and prints the same key.
    again = subprocess.run(
        [sys.executable, "manage.py", "ensure_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.strip().splitlines()[-1] == key
