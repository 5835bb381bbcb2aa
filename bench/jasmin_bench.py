"""Mifumo's single-recipient send next to Jasmin's HTTP ``/send``, in one run on this machine.

    .venv/bin/python -m bench.jasmin_bench [--seconds 15] [--rounds 2] [--redis-db 13]

Jasmin (``jasmin`` 0.11.x from PyPI, in a venv of its own under ``var/bench/jasmin-venv``,
created on the first run with ``/usr/bin/python3.11``) runs ``jasmind`` against the local
RabbitMQ (a vhost of its own made and deleted with ``rabbitmqctl``) and Redis, with a user, a
group, an SMPP client connector and a default MT route to it, all made over jCli. The
connector is never started: Jasmin's ``/send`` authenticates, routes and publishes the
message to the connector's RabbitMQ queue, where it waits; that is its accept path.

Mifumo: a fresh database, the web server with the shipped worker settings (granian, 2 processes
× 4 threads, ``mifumo/web.py``; ``--workers``, ``--threads``), ``POST
/api/integration/v1/sms/send/`` with one recipient (authenticated, validated, priced,
debited, stored, queued; no worker takes the queued tasks, the Redis database is emptied at
the start and the end) and ``/healthz``. Both sides use the same Redis database: Jasmin's keys
have names of their own.

``wrk`` at 32 connections drives each target in turn for ``--seconds``, ``--rounds`` times.
CPU per request is read from ``/proc`` (user + system time) during each run: for Mifumo the
web server's processes, the PostgreSQL backends of the bench database (not the WAL writer) and
redis-server; for Jasmin ``jasmind``, RabbitMQ (``beam.smp``) and redis-server. redis-server
and RabbitMQ serve whatever else runs on the machine too, so their share is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis

from bench.common import (
    ROOT,
    bench_env,
    free_port,
    fresh_database,
    gauged,
    setup_account,
    start,
    stop,
    wait_for_port,
    web_server,
    wrk,
)
from bench.send_bench import SEND_LUA

DATABASE = "mifumo_bench_jasmin"
VHOST = "mifumo_bench_jasmin"
JASMIN_VENV = ROOT / "var" / "bench" / "jasmin-venv"
JASMIN_REQUIREMENT = "jasmin>=0.11,<0.12"
JASMIN_PYTHON = "/usr/bin/python3.11"
# The worker settings mifumo/web.py ships (WEB_WORKERS, WEB_THREADS), by default.
WEB_WORKERS = 2
WEB_THREADS = 4
CONNECTIONS = 32
TEXT = "Habari, your order is ready"
JASMIN_USER = "bench"
JASMIN_PASSWORD = "benchpw"  # Jasmin caps passwords at 8 characters.

JASMIN_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "%s"
"""

JASMIN_CONFIG = """
[redis-client]
host = 127.0.0.1
port = 6379
dbid = {redis_db}

[amqp-broker]
host = 127.0.0.1
port = 5672
username = guest
password = guest
vhost = {vhost}
spec = {spec}

[router]
bind = 127.0.0.1
port = {router}

[client-management]
bind = 127.0.0.1
port = {client_management}

[smpp-server]
bind = 127.0.0.1
port = {smpp_server}

[smpp-server-pb]
bind = 127.0.0.1
port = {smpp_server_pb}

[http-api]
bind = 127.0.0.1
port = {http}

[jcli]
bind = 127.0.0.1
port = {jcli}
"""

# jCli, one line at a time: each object is added in its own session ended by "ok".
JCLI_SETUP = [
    ["group -a", f"gid {JASMIN_USER}", "ok"],
    [
        "user -a",
        f"username {JASMIN_USER}",
        f"password {JASMIN_PASSWORD}",
        f"gid {JASMIN_USER}",
        f"uid {JASMIN_USER}",
        "ok",
    ],
    # Never started: /send only queues for it.
    ["smppccm -a", "cid bench", "host 127.0.0.1", "port 2775", "ok"],
    ["mtrouter -a", "type defaultroute", "connector smppc(bench)", "rate 0.00", "ok"],
]


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Turned into an exception so that every context below stops what it started.
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------
# CPU from /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    pid: int
    comm: str
    start: int  # start time in ticks since boot: tells a reused pid apart
    ticks: int  # utime + stime


def processes() -> list[Proc]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found.append(
            Proc(int(entry.name), comm, int(fields[19]), int(fields[11]) + int(fields[12]))
        )
    return found


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


Classifier = Callable[[Proc], str | None]


def mifumo_processes(port: int, database: str) -> Classifier:
    # The launcher and its forked workers share its command line.
    port_option = f"--port {port} "

    def classify(proc: Proc) -> str | None:
        if proc.comm == "redis-server":
            return "redis"
        line = cmdline(proc.pid)
        if "mifumo.web" in line and port_option in line:
            return "web"
        if line.startswith("postgres: ") and f" {database} " in line:
            return "postgres"
        return None

    return classify


def jasmin_processes(jasmind_pid: int) -> Classifier:
    def classify(proc: Proc) -> str | None:
        if proc.comm == "redis-server":
            return "redis"
        if proc.comm == "beam.smp":
            return "rabbitmq"
        if proc.pid == jasmind_pid:
            return "jasmind"
        return None

    return classify


@dataclass
class CpuMeter:
    """CPU seconds per group of processes between ``start()`` and ``stop()``, sampled often
    enough that a process leaving mid-run still counts up to its last sample."""

    classify: Classifier
    interval: float = 0.25
    first: dict[tuple[int, int], int] = field(default_factory=dict)
    last: dict[tuple[int, int], int] = field(default_factory=dict)
    labels: dict[tuple[int, int], str | None] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self, baseline: bool) -> None:
        for proc in processes():
            key = (proc.pid, proc.start)
            label = self.labels.get(key)
            if key not in self.labels or (label is None and proc.comm == "postgres"):
                # A new PostgreSQL backend takes its title (with the database) only once
                # it has started, so one without a label is asked again.
                label = self.labels[key] = self.classify(proc)
            if label is None:
                continue
            # A process born during the run counts from zero.
            self.first.setdefault(key, proc.ticks if baseline else 0)
            self.last[key] = proc.ticks

    def start(self) -> None:
        self.sample(baseline=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample(baseline=False)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample(baseline=False)
        seconds: dict[str, float] = {}
        for key, ticks in self.last.items():
            label = self.labels[key]
            assert label is not None
            seconds[label] = seconds.get(label, 0.0) + (ticks - self.first[key]) / CLK_TCK
        return seconds


# ---------------------------------------------------------------------------------------
# Jasmin


def ensure_jasmin() -> Path:
    """The venv's python, with jasmin installed into it if it is not there yet."""
    python = JASMIN_VENV / "bin" / "python"
    if not (JASMIN_VENV / "bin" / "jasmind.py").exists():
        print(f"installing {JASMIN_REQUIREMENT} into {JASMIN_VENV} ...", flush=True)
        subprocess.run([JASMIN_PYTHON, "-m", "venv", str(JASMIN_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", JASMIN_REQUIREMENT],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return python


def rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True)


class JCli:
    """jCli over telnet: declines every option the server offers, reads up to a prompt."""

    IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.text = ""

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"jCli closed the connection after {self.text!r}")
        out = bytearray()
        i = 0
        while i < len(data):
            if data[i] != self.IAC or i + 1 >= len(data):
                out.append(data[i])
                i += 1
            elif data[i + 1] in (self.DO, self.DONT, self.WILL, self.WONT) and i + 2 < len(data):
                answer = {self.DO: self.WONT, self.WILL: self.DONT}.get(data[i + 1])
                if answer:
                    self.sock.sendall(bytes([self.IAC, answer, data[i + 2]]))
                i += 3
            elif data[i + 1] == self.SB:
                end = data.find(bytes([self.IAC, self.SE]), i)
                i = len(data) if end < 0 else end + 2
            else:
                i += 2
        self.text += out.decode(errors="replace")

    def until(self, *prompts: str) -> str:
        deadline = time.monotonic() + 15
        while not self.text.endswith(prompts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no jCli prompt after {self.text!r}")
            self._read()
        out, self.text = self.text, ""
        return out

    def line(self, text: str, *prompts: str) -> str:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.until(*prompts)

    def login(self, username: str = "jcliadmin", password: str = "jclipwd") -> None:  # noqa: S107 - Jasmin's documented default
        # The username prompt comes once the first line arrives.
        while "Authentication required" not in self.text:
            self._read()
        self.line("", "Username: ")
        self.line(username, "Password: ")
        welcome = self.line(password, "jcli : ")
        if "Welcome" not in welcome:
            raise RuntimeError(f"jCli login refused: {welcome!r}")

    def run(self, session: list[str]) -> None:
        for text in session[:-1]:
            self.line(text, "> ", "jcli : ")
        answer = self.line(session[-1], "jcli : ")
        if "Successfully" not in answer:
            raise RuntimeError(f"jCli refused {session}: {answer!r}")


@contextmanager
def jasmind(python: Path, redis_db: int) -> Iterator[tuple[str, int]]:
    """A configured ``jasmind``: its HTTP API's base URL and its pid."""
    site = subprocess.run(
        [str(python), "-c", "import txamqp, os; print(os.path.dirname(txamqp.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    spec = Path(site) / "specs" / "standard" / "amqp0-9-1.stripped.xml"
    ports = {
        name: free_port()
        for name in ("router", "client_management", "smpp_server", "smpp_server_pb", "http", "jcli")
    }
    with ExitStack() as stack:
        # Everything Jasmin writes (logs, its store, the config) stays in this directory.
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jasmin-bench-")))
        config = root / "etc" / "jasmin" / "jasmin.cfg"
        config.parent.mkdir(parents=True)
        config.write_text(JASMIN_CONFIG.format(redis_db=redis_db, vhost=VHOST, spec=spec, **ports))
        rabbitmqctl("delete_vhost", VHOST, check=False)
        rabbitmqctl("add_vhost", VHOST)
        stack.callback(rabbitmqctl, "delete_vhost", VHOST, check=False)
        rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
        log = root / "jasmind.log"
        process = start(
            [str(python), str(python.parent / "jasmind.py"), "--config", str(config)],
            {**os.environ, "ROOT_PATH": str(root)},
            log,
            append=False,
            cwd=None,
        )
        stack.callback(stop, process, timeout=15)
        wait_for_port(ports["jcli"], process, log, "jasmind")
        wait_for_port(ports["http"], process, log, "jasmind")
        jcli = JCli(ports["jcli"])
        try:
            jcli.login()
            for session in JCLI_SETUP:
                jcli.run(session)
        finally:
            jcli.sock.close()
        yield f"http://127.0.0.1:{ports['http']}", process.pid


# ---------------------------------------------------------------------------------------
# The runs


@dataclass
class Target:
    name: str
    url: str
    script: Path | None
    classify: Classifier


@dataclass
class Result:
    round: int
    target: str
    figures: dict[str, float]
    cpu: dict[str, float]  # CPU seconds per group over the run
    seconds: int

    @property
    def requests(self) -> float:
        # wrk's rate is completed requests over the run's duration.
        return self.figures["rps"] * self.seconds

    def cpu_ms(self) -> float:
        return sum(self.cpu.values()) * 1000 / self.requests

    def breakdown(self) -> str:
        return " + ".join(
            f"{name} {seconds * 1000 / self.requests:.2f}"
            for name, seconds in sorted(self.cpu.items(), key=lambda item: -item[1])
        )


def check_jasmin(base: str, form: str) -> None:
    with urllib.request.urlopen(f"{base}/send", data=form.encode(), timeout=10) as response:
        answer = response.read().decode()
    if not answer.startswith("Success"):
        raise RuntimeError(f"Jasmin refused the message: {answer}")


def measure(target: Target, seconds: int, round_: int) -> Result:
    meter = CpuMeter(target.classify)
    meter.start()
    try:
        figures = wrk(target.url, connections=CONNECTIONS, seconds=seconds, script=target.script)
    finally:
        cpu = meter.stop()
    return Result(round_, target.name, figures, cpu, seconds)


def report(results: list[Result], rounds: int) -> None:
    print()
    print(
        f"{'round':>5}  {'target':<16} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>8} "
        f"{'CPU ms/req':>10}  (by process)"
    )
    for result in results:
        figures = result.figures
        print(
            f"{result.round:>5}  {result.target:<16} {figures['rps']:>8.0f} "
            f"{figures['p50']:>7.1f} {figures['p99']:>7.1f} {figures['non_2xx']:>8.0f} "
            f"{result.cpu_ms():>10.2f}  ({result.breakdown()})"
        )
    print()
    send_jasmin, send_bare, p99s = [], [], []
    for round_ in range(1, rounds + 1):
        by = {r.target: r for r in results if r.round == round_}
        send = by["mifumo send"].figures
        jasmin_ratio = send["rps"] / by["jasmin /send"].figures["rps"]
        bare_ratio = send["rps"] / by["mifumo /healthz"].figures["rps"]
        send_jasmin.append(jasmin_ratio)
        send_bare.append(bare_ratio)
        p99s.append(send["p99"])
        print(
            f"round {round_}: Mifumo send / Jasmin /send {jasmin_ratio:.2f}×, "
            f"Mifumo send / /healthz {bare_ratio:.2f}×, send p99 {send['p99']:.1f} ms"
        )
    met = min(send_jasmin) >= 1.0 and min(send_bare) >= 0.25 and max(p99s) <= 100
    for name in ("jasmin /send", "mifumo send", "mifumo /healthz"):
        cpu = [r.cpu_ms() for r in results if r.target == name]
        print(f"CPU per request, {name}: median {statistics.median(cpu):.2f} ms")
    print(
        f"target (≥ 1.0× Jasmin, ≥ 0.25× /healthz, p99 ≤ 100 ms in every round): "
        f"{'met' if met else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Mifumo's single-recipient send next to Jasmin's HTTP /send"
    )
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--workers", type=int, default=WEB_WORKERS)
    parser.add_argument("--threads", type=int, default=WEB_THREADS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    # Also when started in the background, where the shell leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    python = ensure_jasmin()
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    fresh_database(DATABASE)
    env = bench_env(DATABASE, REDIS_URL=redis_url)
    flush = redis.Redis.from_url(redis_url).flushdb
    flush()
    key = setup_account(env)
    with ExitStack() as stack:
        stack.callback(flush)
        scripts = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jasmin-bench-")))
        jasmin_base, jasmind_pid = stack.enter_context(jasmind(python, args.redis_db))
        base = stack.enter_context(web_server(env, workers=args.workers, threads=args.threads))
        port = int(urllib.parse.urlsplit(base).port or 0)

        (scripts / "send.lua").write_text(SEND_LUA % key)
        form = urllib.parse.urlencode(
            {
                "username": JASMIN_USER,
                "password": JASMIN_PASSWORD,
                "to": "255712345678",
                "content": TEXT,
            }
        )
        (scripts / "jasmin.lua").write_text(JASMIN_LUA % form)
        mifumo = mifumo_processes(port, DATABASE)
        targets = [
            Target(
                "jasmin /send",
                f"{jasmin_base}/send",
                scripts / "jasmin.lua",
                jasmin_processes(jasmind_pid),
            ),
            Target(
                "mifumo send", f"{base}/api/integration/v1/sms/send/", scripts / "send.lua", mifumo
            ),
            Target("mifumo /healthz", f"{base}/healthz", None, mifumo),
        ]
        check_jasmin(jasmin_base, form)
        # Warm-up: each web worker's first requests open its connections and load what
        # is loaded lazily; Jasmin's first ones open its AMQP channel and load its routes.
        for target in targets:
            wrk(target.url, connections=CONNECTIONS, seconds=3, script=target.script)

        results = []
        for round_ in range(1, args.rounds + 1):
            for target in targets:
                result = measure(target, args.seconds, round_)
                results.append(result)
                print(
                    f"round {round_} {target.name:<16} {result.figures['rps']:8.0f} req/s  "
                    f"p99 {result.figures['p99']:.1f} ms  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        report(results, args.rounds)
        if any(r.figures["non_2xx"] for r in results):
            print("some requests were refused: see non-2xx", file=sys.stderr)


if __name__ == "__main__":
    try:
        with gauged():
            main()
    except KeyboardInterrupt:
        sys.exit(130)
