#!/usr/bin/env python3
"""The two everyday commands, needing nothing but Python 3.11+:

python3 dev.py run    # venv + install + migrate + demo key, then API, worker and beat
python3 dev.py test   # venv + dev install, then the whole test suite (extra args go to pytest)
python3 dev.py screenshots   # every dashboard page at laptop and phone size, in var/screenshots/
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MIFUMO_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def _say(text: str) -> None:
    print(f"[mifumo] {text}", flush=True)


def ensure_venv(*, dev: bool) -> None:
    """Create the virtualenv and (re)install when pyproject.toml changed since last time."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run on an older python3
        sys.exit("Mifumo needs Python 3.11 or newer")
    if not PYTHON.exists():
        _say(f"creating virtualenv in {VENV}")
        venv.create(VENV, with_pip=True)
    extra = "[dev]" if dev else ""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    stamp = VENV / f".mifumo-installed{'-dev' if dev else ''}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    # A dev install is a superset of the plain one.
    dev_stamp = VENV / ".mifumo-installed-dev"
    dev_digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + b"[dev]").hexdigest()
    if not dev and dev_stamp.exists() and dev_stamp.read_text() == dev_digest:
        return
    _say(f"installing dependencies{' (with dev extra)' if dev else ''}")
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}{extra}"], check=True, cwd=ROOT)
    stamp.write_text(digest)


def manage(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return result.stdout


def run(port: int, host: str) -> int:
    ensure_venv(dev=False)
    env = dict(os.environ, PORT=str(port), HOST=host, PYTHONUNBUFFERED="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MIFUMO_VAR_DIR", str(ROOT / "var"))
    if not env.get("REDIS_URL"):
        _say("REDIS_URL unset: embedded broker and in-process cache")
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
        "Ctrl-C stops the API, the worker and the scheduler.",
        "",
    ]
    print("\n".join(banner), flush=True)
    procfile = ROOT / "Procfile"
    command = [str(BIN / "honcho"), "-f", str(procfile), "-d", str(ROOT), "start"]
    if not env.get("SMPP_HOST"):
        # The SMPP client process only has work when an SMPP carrier is configured.
        command += ["web", "worker", "beat"]
    honcho = subprocess.Popen(command, env=env, cwd=ROOT)
    while True:
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached honcho too; let it stop the processes cleanly before we exit.
            honcho.send_signal(signal.SIGINT)


def test(pytest_args: list[str]) -> int:
    ensure_venv(dev=True)
    return subprocess.call([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT)


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
    sub.add_parser("test", help="run the test suite", add_help=False)
    sub.add_parser("screenshots", help="every dashboard page, laptop and phone, as PNG files")
    args, rest = parser.parse_known_args()
    if args.command == "run":
        return run(args.port, args.host)
    if args.command == "screenshots":
        return screenshots(rest)
    return test(rest)


if __name__ == "__main__":
    sys.exit(main())
