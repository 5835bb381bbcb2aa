"""The deployment files read the way Docker reads them, and their services run outside Docker.

``Stack`` turns a service of docker-compose.yml into the process the container would run:
the image's ENTRYPOINT and ENV (from the Dockerfile), the service's command (or the image's
CMD), ``env_file`` (.env.example standing in for .env) and ``environment``, with compose's
``${...}`` interpolation, and paths under /app mapped onto this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.workers import Process

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = "/app"
_HOST_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
VENV_BIN = str(Path(sys.executable).parent)

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's substitution: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = variables.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?") and (current is None or (op == ":?" and not current)):
            raise ValueError(f"compose refuses to start: {name}: {arg}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads an env_file: comments and blank lines skipped, the
    value is the rest of the line, quotes around it removed."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def commented_env_names(path: Path) -> set[str]:
    """Names shown as commented-out defaults (#NAME=value) in an env file."""
    return set(re.findall(r"^#\s?([A-Z][A-Z0-9_]*)=", path.read_text(), flags=re.M))


def load_compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open() as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict)
    return data


@dataclass
class Image:
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    workdir: str
    user: str | None
    healthcheck: list[str]
    runs: list[str] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def read_dockerfile() -> Image:
    """The final stage of the Dockerfile: what a container of the image starts with."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    final = _instructions("FROM " + stages[-1])
    image = Image(entrypoint=[], cmd=[], env={}, workdir="/", user=None, healthcheck=[])
    for word, rest in final:
        if word == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                image.env[key] = interpolate(value, image.env)
        elif word == "ENTRYPOINT":
            image.entrypoint = json.loads(rest)
        elif word == "CMD":
            image.cmd = json.loads(rest)
        elif word == "WORKDIR":
            image.workdir = rest
        elif word == "USER":
            image.user = rest
        elif word == "RUN":
            image.runs.append(rest)
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(rest[rest.index("CMD") + 3 :].strip())
    return image


def local_path(value: str) -> str:
    """/app/... in the image is this checkout."""
    if value == APP_DIR or value.startswith(APP_DIR + "/"):
        return str(ROOT) + value[len(APP_DIR) :]
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """The compose services of this checkout, runnable as local processes."""

    def __init__(self, overrides: dict[str, str], interpolation: dict[str, str] | None = None):
        self.compose = load_compose()
        self.image = read_dockerfile()
        self.env_file = read_env_file(ROOT / ".env.example")
        # Compose substitutes ${...} from the shell and the project's .env.
        self.variables = {**self.env_file, **(interpolation or {})}
        self.overrides = overrides

    def service(self, name: str) -> dict[str, Any]:
        service = self.compose["services"][name]
        assert isinstance(service, dict)
        return service

    def command(self, name: str) -> list[str]:
        service = self.service(name)
        entrypoint = service.get("entrypoint", self.image.entrypoint)
        command = service.get("command", self.image.cmd)
        if isinstance(command, str):
            command = shlex.split(command)
        return [local_path(part) for part in entrypoint] + [
            interpolate(str(part), self.variables) for part in command
        ]

    def environment(self, name: str, **extra: str) -> dict[str, str]:
        service = self.service(name)
        # A container starts from the image's environment, not from the test runner's.
        env = {key: os.environ[key] for key in _HOST_ENV if key in os.environ}
        env.update({key: local_path(value) for key, value in self.image.env.items()})
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        env_files = service.get("env_file", [])
        if env_files:
            env.update(self.env_file)
        declared = service.get("environment") or {}
        if isinstance(declared, list):
            declared = dict(item.split("=", 1) for item in declared)
        env.update({k: interpolate(str(v), self.variables) for k, v in declared.items()})
        env.update(self.overrides)
        env.update(extra)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, name: str, log_dir: Path, *args: str, label: str = "", **extra: str) -> Process:
        argv = [*self.command(name), *args]
        if argv[0].endswith(".sh"):
            argv = ["sh", *argv]
        return Process(argv, self.environment(name, **extra), log_dir / f"{label or name}.log")

    def run(self, name: str, log_dir: Path, *args: str, timeout: float = 180, **extra: str) -> str:
        """A one-shot service (or ``docker compose run``): waits for it, returns its output."""
        process = self.start(name, log_dir, *args, **extra)
        try:
            code = process.popen.wait(timeout)
        finally:
            process.kill()
        output = process.log_path.read_text(errors="replace")
        assert code == 0, f"{name} {args} exited {code}:\n{output[-4000:]}"
        return output

    def compose_run(self, name: str, log_dir: Path, *argv: str, **extra: str) -> str:
        """``docker compose run --rm NAME ARGV...``: the image's entrypoint, then ARGV."""
        entrypoint = [
            local_path(part) for part in self.service(name).get("entrypoint", self.image.entrypoint)
        ]
        if entrypoint[0].endswith(".sh"):
            entrypoint = ["sh", *entrypoint]
        label = f"run-{argv[-1] if argv else name}".replace("/", "_")
        process = Process([*entrypoint, *argv], self.environment(name, **extra), log_dir / label)
        try:
            code = process.popen.wait(180)
        finally:
            process.kill()
        output = process.log_path.read_text(errors="replace")
        assert code == 0, f"{argv} exited {code}:\n{output[-4000:]}"
        return output


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30,
) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())


def wait_http(url: str, *, headers: dict[str, str], timeout: float = 60) -> Reply:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            reply = http(url, headers=headers, timeout=5)
            if reply.status == 200:
                return reply
            last = (reply.status, reply.body[:300])
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} not 200 within {timeout}s; last: {last}")
