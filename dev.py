#!/usr/bin/env python3
"""The everyday commands, needing nothing but Python 3.11+:

python3 dev.py run          # venv + install + migrate + demo key, then API, worker and beat
python3 dev.py test         # venv + dev install, then the whole test suite (args go to pytest)
python3 dev.py manage       # a manage.py command on the same servers (args go to manage.py)
python3 dev.py screenshots  # every dashboard page at laptop and phone size, in var/screenshots/

Without DATABASE_URL / REDIS_URL each command starts a private PostgreSQL (data in
var/postgres) and Redis (var/redis) from their PyPI wheels, and stops them when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import venv
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MIFUMO_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
# Set while dev.py runs again inside the virtualenv (after installing).
IN_VENV = "MIFUMO_DEV_IN_VENV"
# The Redis database each command uses on the embedded server, so that a test run next to a
# running `dev.py run` never empties its queues.
REDIS_DB = {"run": 0, "manage": 0, "test": 1}


def _say(text: str) -> None:
    print(f"[mifumo] {text}", flush=True)


def _install_digest(extra: str) -> str:
    """What the install depends on: the server's and the client's project files."""
    files = (ROOT / "pyproject.toml", ROOT / "clients" / "python" / "pyproject.toml")
    return hashlib.sha256(b"".join(f.read_bytes() for f in files) + extra.encode()).hexdigest()


def ensure_venv(*, dev: bool) -> None:
    """Create the virtualenv and (re)install when pyproject.toml changed since last time."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run on an older python3
        sys.exit("Mifumo needs Python 3.11 or newer")
    if not PYTHON.exists():
        _say(f"creating virtualenv in {VENV}")
        venv.create(VENV, with_pip=True)
    extra = "[dev]" if dev else "[embedded]"
    digest = _install_digest(extra)
    stamp = VENV / f".mifumo-installed{'-dev' if dev else ''}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    # A dev install is a superset of the plain one.
    dev_stamp = VENV / ".mifumo-installed-dev"
    dev_digest = _install_digest("[dev]")
    if not dev and dev_stamp.exists() and dev_stamp.read_text() == dev_digest:
        return
    _say(f"installing dependencies{' (with dev extra)' if dev else ''}")
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    client = ROOT / "clients" / "python"  # the Python client and its `mifumo` command
    subprocess.run([*pip, "-e", f"{ROOT}{extra}", "-e", str(client)], check=True, cwd=ROOT)
    stamp.write_text(digest)


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A child's pre-exec step: receive ``sig`` when this process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def setup() -> None:
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return setup


def start(
    args: list[str], env: dict[str, str], *, own_session: bool = False
) -> subprocess.Popen[bytes]:
    """A child that is told to stop (SIGTERM) if dev.py dies without stopping it. With
    ``own_session`` the terminal's signals (Ctrl-C, its closing) reach dev.py alone, which
    passes them on (``supervise``)."""
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        preexec_fn=_die_with_parent(signal.SIGTERM),
        start_new_session=own_session,
    )


def _descendants(pid: int) -> list[int]:
    """The processes started, directly or not, by process ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, waiting = [], [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found


def _hang_up(child: subprocess.Popen[bytes]) -> None:
    """The terminal is gone: ``child`` (honcho) can no longer write, and would not get to
    stopping what it started, so those get a SIGTERM here, then it; a SIGKILL follows for
    whatever still runs 20 seconds later."""
    for pid in [*_descendants(child.pid), child.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def kill_the_rest() -> None:
        for pid in [*_descendants(child.pid), child.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(20, kill_the_rest)
    timer.daemon = True
    timer.start()


def supervise(child: subprocess.Popen[bytes]) -> int:
    """Wait for ``child``; Ctrl-C or a SIGTERM to dev.py let it stop its processes cleanly
    before dev.py goes on to stop the servers; its terminal closing (SIGHUP) stops them all
    from here."""

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            _hang_up(child)
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in stops}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _describe(url: str) -> str:
    """Where a server URL points, without its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"{parts.path}?{parts.query}"
    return unquote(parts.netloc.rpartition("@")[2]) + parts.path


@contextlib.contextmanager
def servers(command: str, env: dict[str, str]) -> Iterator[None]:
    """Point ``env`` at PostgreSQL and Redis: those of DATABASE_URL / REDIS_URL when set,
    else the embedded ones, started here (or already running for another dev.py) and
    stopped when the block ends."""
    from mifumo import embedded

    var_dir = Path(env["MIFUMO_VAR_DIR"])
    started: list[embedded.EmbeddedPostgres | embedded.EmbeddedRedis] = []

    def stop_started() -> None:
        while started:
            started.pop().stop()

    # A SIGTERM while the servers start (or before the child takes over) still stops them.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        postgres = embedded.laptop_postgres(var_dir)
        redis = embedded.laptop_redis(var_dir)
        said = []
        for variable, server in (("DATABASE_URL", postgres), ("REDIS_URL", redis)):
            if env.get(variable):
                said.append(f"{server.name} at {variable} ({_describe(env[variable])})")
                continue
            if server.answers():
                # Another dev.py (a `run` while `test` starts) has it running.
                said.append(f"{server.name} embedded in {server.location} (already running)")
            else:
                server.start()
                started.append(server)
                said.append(f"{server.name} embedded in {server.location}")
            if server is postgres:
                postgres.ensure_database(embedded.DATABASE)
                env[variable] = postgres.url(embedded.DATABASE)
            else:
                env[variable] = redis.url(REDIS_DB[command])
        _say("servers: " + "; ".join(said))
        yield
    except embedded.EmbeddedServerError as exc:
        sys.exit(f"[mifumo] {exc}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stop_started()


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return result.stdout


def base_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MIFUMO_VAR_DIR", str(ROOT / "var"))
    Path(env["MIFUMO_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def _refusal_to_run(var_dir: Path, host: str, port: int) -> str | None:
    """Why ``run`` must not start, or None: another ``run`` uses the same data folder (two
    schedulers would send every due message twice), or something listens on the port (the
    web server shares a port it finds taken: requests would go to either)."""
    lock = (var_dir / "run.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return f"another `dev.py run` uses {var_dir}: stop it first"
    _HELD.append(lock)  # held until dev.py ends
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Connections of an earlier run waiting out their close do not count; a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port} ({exc.strerror}): choose another with --port"
    return None


_HELD: list[object] = []


def run(port: int, host: str, verbose: bool) -> int:
    env = dict(base_env(), PORT=str(port), HOST=host)
    refusal = _refusal_to_run(Path(env["MIFUMO_VAR_DIR"]), host, port)
    if refusal:
        print(f"[mifumo] {refusal}", file=sys.stderr)
        return 1
    # Quiet unless -v: one access line per send and per failed request, and Celery's own
    # lines (each task, beat's every due entry) only when something goes wrong.
    env.setdefault("MIFUMO_ACCESS_LOG", "true" if verbose else "sends")
    env.setdefault("CELERY_LOG_LEVEL", "INFO" if verbose else "WARNING")
    with servers("run", env):
        manage("migrate", "--noinput", env=env)
        demo = manage("ensure_demo", env=env).strip().splitlines()
        banner = [
            "",
            demo[0],
            f"    {demo[-1]}",
            "",
            "Try it:",
            f"    curl http://{host}:{port}/api/integration/v1/sms/balance/ "
            f'-H "Authorization: Bearer {demo[-1]}"',
            f"API docs: http://{host}:{port}/api/integration/documentation/",
            "Ctrl-C stops the API, the worker, the scheduler and the servers.",
            "",
        ]
        print("\n".join(banner), flush=True)
        command = [str(BIN / "honcho"), "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start"]
        if not env.get("SMPP_HOST"):
            # The SMPP client process only has work when an SMPP carrier is configured.
            command += ["web", "worker", "beat"]
        # In a session of its own: honcho would die of the terminal's SIGHUP without stopping
        # the processes it started (each in a session of its own), leaving them running.
        return supervise(start(command, env, own_session=True))


def find_chromium() -> str | None:
    """A Chromium for the browser tests: MIFUMO_CHROMIUM, Playwright's own, or the system's."""
    named = os.environ.get("MIFUMO_CHROMIUM")
    if named:
        return named
    cache = Path(
        os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright"
    )
    for pattern in ("chromium-*/chrome-linux/chrome", "chromium_headless_shell-*/*/headless_shell"):
        found = sorted(cache.glob(pattern))
        if found:
            return str(found[-1])
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """Find Chromium or install it: the Debian package as root, else Playwright's build."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _say("installing Chromium for the browser tests (apt-get install chromium)")
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=apt, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=apt, check=False)
    else:
        _say("installing Chromium for the browser tests (playwright install chromium)")
        subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"], check=False)
    found = find_chromium()
    if found:
        return found
    sudo = "" if os.geteuid() == 0 else "sudo "
    sys.exit(
        "[mifumo] The dashboard's browser tests need Chromium and none could be installed. "
        f"Install it with `{sudo}apt-get install -y chromium` (Debian, Ubuntu) or "
        f"`{PYTHON} -m playwright install chromium`, or set MIFUMO_CHROMIUM to its path."
    )


def test(pytest_args: list[str]) -> int:
    env = dict(base_env(), MIFUMO_CHROMIUM=ensure_chromium())
    with servers("test", env):
        return supervise(start([sys.executable, "-m", "pytest", *pytest_args], env))


def manage_command(args: list[str]) -> int:
    env = base_env()
    with servers("manage", env):
        return supervise(start([sys.executable, "manage.py", *args], env))


def screenshots(pytest_args: list[str]) -> int:
    """Photograph every dashboard page at a laptop's and a phone's size into
    var/screenshots/, by running the page-layout tests with a folder to write to."""
    folder = ROOT / "var" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    os.environ["MIFUMO_SCREENSHOTS_DIR"] = str(folder)
    status = test(["tests/dashboard/test_pages.py", "-q", "-p", "no:randomly", *pytest_args])
    shots = sorted(p.name for p in folder.glob("*.png"))
    _say(f"{len(shots)} screenshots in {folder}:")
    for name in shots:
        print(f"    {name}", flush=True)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the API, worker and scheduler")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8001)))
    run_parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run_parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every task and request (INFO)"
    )
    sub.add_parser("test", help="run the test suite", add_help=False)
    sub.add_parser("manage", help="run a manage.py command", add_help=False)
    sub.add_parser("screenshots", help="every dashboard page, laptop and phone, as PNG files")
    args, rest = parser.parse_known_args()
    if os.environ.get(IN_VENV) != str(VENV):
        # Install, then go on inside the virtualenv, where the servers' wheels are.
        ensure_venv(dev=args.command in ("test", "screenshots"))
        again = [str(PYTHON), str(ROOT / "dev.py"), *sys.argv[1:]]
        os.execve(PYTHON, again, {**os.environ, IN_VENV: str(VENV)})  # noqa: S606
    os.environ.pop(IN_VENV)
    if args.command == "run":
        return run(args.port, args.host, args.verbose)
    if args.command == "manage":
        return manage_command(rest)
    if args.command == "screenshots":
        return screenshots(rest)
    return test(rest)


if __name__ == "__main__":
    sys.exit(main())
