"""The embedded PostgreSQL and Redis (mifumo.embedded) and what dev.py builds on them: data
kept between starts, Unix sockets, a clean stop, no server outliving its parent, and the
Chromium the browser tests need."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import redis

import dev
from mifumo import embedded
from mifumo.broker import broker_url
from tests.workers import ROOT, wait_until


def test_broker_urls_for_tcp_and_unix_sockets() -> None:
    assert broker_url("redis://127.0.0.1:6379/3") == "redis://127.0.0.1:6379/3"
    assert broker_url("unix:///srv/var/redis/redis.sock?db=1") == (
        "mifumo+socket:///srv/var/redis/redis.sock?virtual_host=1"
    )
    assert broker_url("unix:///tmp/r.sock").endswith("?virtual_host=0")


def test_the_settings_default_to_the_servers_dev_py_runs(settings) -> None:
    var = Path(settings.VAR_DIR)
    assert embedded.default_database_url(var) == embedded.laptop_postgres(var).url("mifumo")
    assert embedded.default_redis_url(var) == embedded.laptop_redis(var).url(0)
    assert embedded.default_redis_url(var).startswith("unix://")


def test_a_socket_path_too_long_for_unix_sockets_moves_to_a_short_folder(tmp_path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = embedded.EmbeddedRedis(deep)
    assert len(str(server.socket)) <= 107
    assert server.socket.parent.name.startswith("mifumo-")
    assert embedded.EmbeddedRedis(deep).socket == server.socket  # the same folder every time
    server.socket.parent.rmdir()
    assert embedded.EmbeddedRedis(tmp_path / "r").socket == (tmp_path / "r").resolve() / (
        "redis.sock"
    )


@pytest.mark.slow
def test_postgres_keeps_its_data_between_starts_and_stops_cleanly(tmp_path) -> None:
    server = embedded.EmbeddedPostgres(tmp_path / "postgres")
    assert not server.answers()
    server.start()
    try:
        server.ensure_database("kept")
        server.ensure_database("kept")  # a second time changes nothing
        url = server.url("kept").replace("postgres://", "postgresql://", 1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE note (text varchar)")
            conn.execute("INSERT INTO note VALUES ('habari')")
            version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 140000
    finally:
        server.stop()
    assert not server.answers()
    assert "database system is shut down" in server.log.read_text()
    again = embedded.EmbeddedPostgres(tmp_path / "postgres")
    again.start()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT text FROM note").fetchall() == [("habari",)]
    finally:
        again.stop()


def test_redis_keeps_its_data_between_starts(tmp_path) -> None:
    server = embedded.EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        assert server.answers()
        redis.Redis.from_url(server.url(2)).set("kept", "yes")
    finally:
        server.stop()
    assert not server.answers() and (tmp_path / "redis" / "dump.rdb").is_file()
    server.start()
    try:
        assert redis.Redis.from_url(server.url(2)).get("kept") == b"yes"
    finally:
        server.stop()


def test_a_server_that_cannot_start_says_why(tmp_path) -> None:
    data = tmp_path / "postgres"
    data.mkdir()
    (data / "PG_VERSION").write_text("9\n")  # a cluster of another major version
    with pytest.raises(embedded.EmbeddedServerError) as failure:
        embedded.EmbeddedPostgres(data).start(timeout=30)
    assert "PostgreSQL" in str(failure.value) and str(data) in str(failure.value)


CHILD = """
import os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from mifumo import embedded
postgres = embedded.EmbeddedPostgres(Path({var!r}) / "postgres")
redis = embedded.EmbeddedRedis(Path({var!r}) / "redis")
postgres.start()
redis.start()
print(postgres.popen.pid, redis.popen.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_servers_stop_when_their_parent_is_killed(tmp_path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD.format(root=str(ROOT), var=str(tmp_path)))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)  # no chance to stop anything itself
        parent.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30)
    log = (tmp_path / "postgres" / "server.log").read_text()
    assert "fast shutdown request" in log and "database system is shut down" in log


def test_postgres_never_runs_as_root_and_its_files_stay_the_callers(tmp_path) -> None:
    """As root the server runs in a user namespace where it is an unprivileged user, while
    outside it (and on disk) it is still root; as anyone else it is simply that user."""
    server = embedded.EmbeddedPostgres(tmp_path / "postgres")
    server.start()
    try:
        assert server.popen is not None
        pid = server.popen.pid
        uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
        if os.geteuid() == 0:
            assert uid_map[1:] == ["0", "1"] and uid_map[0] != "0", uid_map
        else:
            assert uid_map == Path("/proc/self/uid_map").read_text().split()
        status = Path(f"/proc/{pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid_line.split()[1]) == os.geteuid()  # seen from here
        assert (tmp_path / "postgres" / "PG_VERSION").stat().st_uid == os.geteuid()
    finally:
        server.stop()


def test_chromium_is_found_by_name_then_playwright_then_the_system(tmp_path, monkeypatch):
    monkeypatch.setenv("MIFUMO_CHROMIUM", "/opt/named/chrome")
    assert dev.find_chromium() == "/opt/named/chrome"
    monkeypatch.delenv("MIFUMO_CHROMIUM")
    build = tmp_path / "chromium-1187" / "chrome-linux" / "chrome"
    build.parent.mkdir(parents=True)
    build.write_text("")
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    assert dev.find_chromium() == str(build)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "none"))
    system = tmp_path / "bin" / "chromium"
    system.parent.mkdir()
    system.write_text("")
    system.chmod(0o755)
    monkeypatch.setenv("PATH", str(system.parent))
    assert dev.find_chromium() == str(system)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert dev.find_chromium() is None


def test_without_chromium_and_no_way_to_install_it_the_command_is_printed(monkeypatch, capsys):
    tried: list[list[str]] = []
    monkeypatch.setattr(dev, "find_chromium", lambda: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: tried.append(args))
    with pytest.raises(SystemExit) as stop:
        dev.ensure_chromium()
    assert tried == [[sys.executable, "-m", "playwright", "install", "chromium"]]
    assert "sudo apt-get install -y chromium" in str(stop.value.code)
    assert "-m playwright install chromium" in str(stop.value.code)


def test_as_root_chromium_comes_from_apt(monkeypatch):
    tried: list[list[str]] = []
    found = iter([None, "/usr/bin/chromium"])
    monkeypatch.setattr(dev, "find_chromium", lambda: next(found))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: tried.append(args))
    assert dev.ensure_chromium() == "/usr/bin/chromium"
    assert tried == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "chromium"],
    ]
