"""The compose services, started as docker compose would start them but as local processes,
on a database of their own: migrate, web (granian), the three workers and beat. A message
goes out through the HTTP API and the simulator; the dashboard, static files, metrics and
logs work as they will in production."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.ops.stack import ROOT, Stack, free_port, http, read_env_file, wait_http

pytestmark = pytest.mark.slow

TOKEN = "metrics-token-0123456789"
ADMIN_PASSWORD = "stack-Admin-Pass-7"
WORKERS = ("worker-dispatch", "worker-receipts", "worker-webhooks")


def cookies(reply) -> dict[str, str]:
    jar = {}
    for header in reply.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            head, _, value = line.rpartition(" ")
            found = ",".join(sorted(re.findall(r'(\w+="[^"]*")', head)))
            if not labels or found == wanted:
                total += float(value)
    return total


def test_a_fresh_install_serves_the_api_the_dashboard_and_delivers(
    tmp_path: Path, fresh_database: str, clean_broker: str
):
    host = read_env_file(ROOT / ".env.example")["ALLOWED_HOSTS"].split(",")[0]
    port = free_port()
    worker_ports = {name: free_port() for name in WORKERS}
    stack = Stack(
        overrides={
            "DATABASE_URL": fresh_database,
            "REDIS_URL": clean_broker,
            "MIFUMO_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_WORKERS": "2",
            "WEB_THREADS": "4",
            "MIFUMO_SIMULATOR_DELAY": "0.5",
            "MIFUMO_METRICS_TOKEN": TOKEN,
            "MIFUMO_FIRST_ACCOUNT_BALANCE": "1000",
            "MIFUMO_DUE_SECONDS": "1",
            # .env.example's placeholder is refused: an operator must choose one.
            "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
        },
        interpolation={
            "WORKER_DISPATCH_CONCURRENCY": "2",
            "WORKER_RECEIPTS_CONCURRENCY": "1",
            "WORKER_WEBHOOKS_CONCURRENCY": "1",
        },
    )
    admin_password = ADMIN_PASSWORD
    account = stack.env_file["MIFUMO_FIRST_ACCOUNT"]

    # The image's build step, then the one-shot migrate service.
    stack.compose_run("web", tmp_path, "python", "manage.py", "collectstatic", "--noinput")
    migrated = stack.run("migrate", tmp_path)
    assert "Applying sms.0001_initial... OK" in migrated
    assert "Superuser created successfully" in migrated

    processes = []
    try:
        web = stack.start("web", tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "m-web"))
        processes.append(web)
        for name in WORKERS:
            processes.append(
                stack.start(
                    name,
                    tmp_path,
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"m-{name}"),
                    MIFUMO_METRICS_PORT=str(worker_ports[name]),
                )
            )
        processes.append(stack.start("beat", tmp_path))
        for process in processes[1:4]:
            process.wait_for("ready.", timeout=90)
        processes[4].wait_for("Starting", timeout=60)

        base = f"http://127.0.0.1:{port}"
        plain = {"Host": host}
        # Behind the TLS proxy: X-Forwarded-Proto says the client used HTTPS.
        proxied = {"Host": host, "X-Forwarded-Proto": "https"}
        ready = wait_http(f"{base}/readyz", headers=plain, timeout=90).json()
        assert ready == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}

        # An operator makes a key: docker compose run --rm web python manage.py create_api_key
        made = stack.compose_run("web", tmp_path, "python", "manage.py", "create_api_key", account)
        key = made.strip().splitlines()[-1]
        assert key.startswith("mif_live_")
        api = {**proxied, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        assert http(f"{base}/api/integration/v1/sms/balance/", headers=plain).status == 301
        balance = http(f"{base}/api/integration/v1/sms/balance/", headers=api)
        assert balance.status == 200 and balance.json()["data"]["balance"] == 1000.0
        assert "max-age=31536000" in balance.headers["Strict-Transport-Security"]

        body = {"message": "Habari kutoka Mifumo", "recipients": ["0712345678", "0754000005"]}
        sent = http(
            f"{base}/api/integration/v1/sms/send/",
            method="POST",
            headers={**api, "X-Request-ID": "stack-send-000001"},
            body=json.dumps(body).encode(),
        )
        assert sent.status == 200, sent.body
        assert sent.headers["X-Request-ID"] == "stack-send-000001"
        message_id = sent.json()["data"]["message_id"]

        deadline = time.monotonic() + 60
        status: dict = {}
        while time.monotonic() < deadline:
            reply = http(f"{base}/api/integration/v1/sms/status/{message_id}/", headers=api)
            status = reply.json()["data"]
            if status["status"] == "delivered":
                break
            time.sleep(0.5)
        assert status["status"] == "delivered", status
        assert {r["status"] for r in status["recipients"]} == {"delivered"}

        # The dashboard: sign in as the first admin and see the account.
        login_url = f"{base}/api/integration/dashboard/login/"
        page = http(login_url, headers=proxied)
        assert page.status == 200
        jar = cookies(page)
        assert "Secure" in " ".join(page.headers.get_all("Set-Cookie"))
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        assert token
        signed_in = http(
            login_url,
            method="POST",
            headers={
                **proxied,
                "Cookie": f"csrftoken={jar['csrftoken']}",
                "Origin": f"https://{host}",
                "Referer": f"https://{host}/api/integration/dashboard/login/",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=urlencode(
                {
                    "username": stack.env_file["DJANGO_SUPERUSER_USERNAME"],
                    "password": admin_password,
                    "csrfmiddlewaretoken": token.group(1).decode(),
                }
            ).encode(),
        )
        assert signed_in.status == 302, signed_in.body[:2000]
        session = cookies(signed_in)["sessionid"]
        overview = http(
            f"{base}/api/integration/dashboard/",
            headers={**proxied, "Cookie": f"sessionid={session}"},
        )
        assert overview.status == 200
        assert account.encode() in overview.body

        # Static files come from WhiteNoise with DEBUG off.
        for path in (
            "/static/dashboard/dashboard.css",
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        ):
            asset = http(base + path, headers=proxied)
            assert asset.status == 200, path
            assert asset.headers["Content-Type"].startswith("text/css")
        assert http(f"{base}/api/integration/documentation/", headers=proxied).status == 200

        # Metrics: the web processes together, and each worker on its own port.
        assert http(f"{base}/metrics", headers=plain).status == 404
        scraped = http(f"{base}/metrics", headers={**plain, "Authorization": f"Bearer {TOKEN}"})
        assert scraped.status == 200
        text = scraped.body.decode()
        send_route = "/api/integration/v1/sms/send/"
        assert (
            metric(
                text, "mifumo_http_requests_total", method="POST", route=send_route, status="200"
            )
            == 1
        )
        assert metric(text, "mifumo_balance_debits_total", currency="TZS") == 1
        assert metric(text, "mifumo_balance_debited_amount_total", currency="TZS") == 20.0
        assert metric(text, "mifumo_recipients_final_recent", status="delivered") == 2
        assert metric(text, "mifumo_queue_depth", queue="dispatch") == 0

        def worker_metrics(name: str) -> str:
            url = f"http://127.0.0.1:{worker_ports[name]}/metrics"
            assert http(url).status == 404
            reply = http(url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert reply.status == 200
            return reply.body.decode()

        dispatch = worker_metrics("worker-dispatch")
        assert metric(dispatch, "mifumo_recipient_status_changes_total", status="sent") == 2
        receipts = worker_metrics("worker-receipts")
        assert metric(receipts, "mifumo_recipient_status_changes_total", status="delivered") == 2

        # Logs: one JSON object per line; the send's line carries the id the client got.
        lines = [json.loads(line) for line in web.output().splitlines() if line.strip()]
        access = [line for line in lines if line["logger"] == "mifumo.access"]
        send_lines = [line for line in access if line["path"] == send_route]
        assert send_lines[0]["request_id"] == "stack-send-000001"
        assert send_lines[0]["status"] == 200
        for process in processes[1:]:
            for line in process.output().splitlines():
                if line.startswith("{"):
                    assert json.loads(line)["level"]
    finally:
        for process in processes:
            process.kill()
    # A restart of migrate finds nothing to do and keeps the admin.
    again = stack.run("migrate", tmp_path)
    assert "No migrations to apply" in again and "user admin exists" in again
