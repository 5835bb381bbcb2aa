"""The ``mifumo`` command through its installed entry point, against a real server: tables,
``--json``, CSV, the import's progress and row errors, ``status --watch``, and the exit code
of every kind of failure."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faulty_proxy import Fault, FaultyProxy
from mifumo_server import MIFUMO, Server, closed_port

from contacts.models import Contact
from inbox.services import number_assign
from integration.models import Account
from sms.models import Message
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Ran]


def run(*args: str, key: str | None, url: str, timeout: float = 120) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIFUMO_")}
    env["MIFUMO_URL"] = url
    if key is not None:
        env["MIFUMO_API_KEY"] = key
    done = subprocess.run(
        [str(MIFUMO), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def mifumo(server: Server, api_key: str) -> Cli:
    def call(*args: str, key: str | None = api_key, url: str = server.url) -> Ran:
        return run(*args, key=key, url=url)

    return call


def test_send_prints_a_table_or_json(mifumo: Cli, account: Account) -> None:
    shown = mifumo("send", "--to", "0712345675", "--to", "0754000005", "Habari za leo")
    assert shown.code == 0, shown.err
    assert "message_id" in shown.out and "queued" in shown.out and "20.00" in shown.out

    scripted = mifumo("--json", "send", "--to", "0712345675", "Tena")
    assert scripted.code == 0, scripted.err
    data = scripted.json()
    assert data["recipients"] == ["+255712345675"] and data["cost"] == 10.0
    assert Message.objects.filter(account=account).count() == 2
    assert mifumo("balance", "--json").json()["balance"] == 4970.0


def test_status_watch_follows_a_message_until_it_is_delivered(mifumo: Cli) -> None:
    sent = mifumo("send", "--to", "0712345675", "--to", "0754000005", "Fuatilia", "--json").json()
    watched = mifumo("status", sent["message_id"], "--watch", "--interval", "0.2")
    assert watched.code == 0, watched.err
    assert sent["message_id"] in watched.err and "delivered 2" in watched.err.splitlines()[-1]
    assert "delivered" in watched.out and "+255754000005" in watched.out

    again = mifumo("status", sent["message_id"], "--json")
    assert again.code == 0
    data = again.json()
    assert data["status"] == "delivered" and len(data["recipients"]) == 2


def test_status_watch_exits_1_for_a_failure_and_10_when_it_gives_up(mifumo: Cli) -> None:
    failing = mifumo("send", "--to", "0712340001", "Haitafika", "--json").json()
    failed = mifumo("status", failing["message_id"], "--watch", "--interval", "0.2", "--json")
    assert failed.code == 1, failed.err
    assert failed.json()["status"] == "failed"
    assert failed.json()["recipients"][0]["error_code"] == "UNDELIVERABLE"

    silent = mifumo("send", "--to", "0712340003", "Kimya", "--json").json()
    waiting = mifumo(
        "status", silent["message_id"], "--watch", "--interval", "0.2", "--timeout", "1"
    )
    assert waiting.code == 10, waiting.err
    assert "still sent" in waiting.err


def test_import_shows_progress_lists_bad_rows_and_exits_1(
    mifumo: Cli, account: Account, tmp_path: Path
) -> None:
    path = tmp_path / "wateja.csv"
    path.write_text(
        "name,phone_number,email\n"
        "Amina,0712000015,amina@example.com\n"
        "Baraka,12345,\n"
        "Chausiku,0754000025,not-an-email\n"
        "Daudi,0765000035,\n"
    )
    shown = mifumo("contacts", "import", str(path))
    assert shown.code == 1, shown.err
    assert "Uploading" in shown.err
    lines = shown.out.splitlines()
    assert lines[0].split() == ["created", "2"] and lines[3].split() == ["failed", "2"]
    assert any(line.split()[:2] == ["3", "phone_number"] for line in lines)
    assert any(line.split()[:2] == ["4", "email"] for line in lines)
    assert Contact.objects.filter(account=account).count() == 2

    again = mifumo("contacts", "import", str(path), "--on-duplicate", "update", "--json")
    assert again.code == 1
    assert {k: again.json()[k] for k in ("created", "updated", "failed")} == {
        "created": 0,
        "updated": 2,
        "failed": 2,
    }

    clean = tmp_path / "safi.csv"
    clean.write_text("name,phone_number\nEsther,0784000045\n")
    assert mifumo("contacts", "import", str(clean)).code == 0


def test_contacts_segments_and_the_export(mifumo: Cli, tmp_path: Path) -> None:
    made = mifumo("contacts", "create", "Amina", "0712000015", "--tag", "vip", "--json").json()
    assert made["phone_number"] == "+255712000015"
    assert mifumo("contacts", "create", "Baraka", "0754000025").code == 0
    changed = mifumo("contacts", "update", made["id"], "--email", "a@example.com", "--json")
    assert changed.json()["email"] == "a@example.com"
    assert mifumo("contacts", "opt-out", made["id"], "--json").json()["opted_out"] is True
    listed = mifumo("contacts", "list", "amina")
    assert "Amina" in listed.out and "Baraka" not in listed.out

    segment = mifumo("segments", "create", "VIP", "--criteria", '{"tags": ["vip"]}', "--json")
    segment_id = segment.json()["id"]
    assert "VIP" in mifumo("segments", "list").out
    assert [c["name"] for c in mifumo("segments", "contacts", segment_id, "--json").json()] == [
        "Amina"
    ]

    exported = tmp_path / "out.csv"
    assert mifumo("contacts", "export", "-o", str(exported)).code == 0
    rows = list(csv.DictReader(exported.open()))
    assert sorted(r["name"] for r in rows) == ["Amina", "Baraka"]
    only = mifumo("contacts", "export", "--segment", segment_id)
    assert only.out.splitlines()[1].startswith("Amina,+255712000015,a@example.com,vip,")


def test_messages_reports_csv_and_cancel(mifumo: Cli) -> None:
    sent = mifumo("send", "--to", "0712345675", "Ripoti", "--json").json()
    assert mifumo("status", sent["message_id"], "--watch", "--interval", "0.2").code == 0
    later = mifumo("send", "--to", "0754000005", "Baadaye", "--at", "+2h", "--json").json()
    assert later["status"] == "scheduled"

    listed = mifumo("messages")
    assert listed.out.index(later["message_id"]) < listed.out.index(sent["message_id"])
    report = mifumo("reports", "--csv", "--status", "delivered")
    rows = list(csv.DictReader(io.StringIO(report.out)))
    assert [(r["message_id"], r["phone"], r["cost"]) for r in rows] == [
        (sent["message_id"], "+255712345675", "10.00")
    ]
    assert "delivered" in mifumo("reports").out

    canceled = mifumo("cancel", later["message_id"], "--json").json()
    assert (canceled["status"], canceled["refunded"]) == ("canceled", 10.0)
    status = mifumo("status", later["message_id"], "--json").json()
    assert (status["cost"], status["refunded"]) == (10.0, 10.0)
    assert [s["sender_id"] for s in mifumo("sender-ids", "list", "--json").json()] == ["MIFUMO"]


def test_keys_and_webhooks(mifumo: Cli, receiver: Receiver) -> None:
    new = mifumo("keys", "create", "ripoti", "--permissions", "read", "--json").json()
    assert new["key"].startswith("mif_live_") and new["permissions"] == ["read"]
    assert "ripoti" in mifumo("keys", "list").out
    assert mifumo("balance", "--json", key=new["key"]).json()["currency"] == "TZS"
    assert mifumo("keys", "revoke", str(new["id"]), "--json").json()["status"] == "revoked"

    hook = mifumo("webhooks", "create", receiver.url_for("/cli"), "--json").json()
    assert hook["secret"].startswith("whsec_")
    tested = mifumo("webhooks", "test", hook["id"])
    assert tested.code == 0 and "succeeded" in tested.out
    assert receiver.on("/cli")[0].header("X-Mifumo-Event") == "message.test"
    assert hook["id"] in mifumo("webhooks", "list").out
    deliveries = mifumo("webhooks", "deliveries", "--webhook", hook["id"], "--json").json()
    assert [d["event"] for d in deliveries] == ["message.test"]
    assert mifumo("webhooks", "disable", hook["id"], "--json").json()["active"] is False

    receiver.fail(1, status=500)
    failing = mifumo("webhooks", "test", hook["id"])
    assert failing.code == 1 and "failed" in failing.out


def test_exit_codes_say_what_failed(
    mifumo: Cli,
    server: Server,
    make_account: Callable[..., Account],
    make_limited_account: Callable[..., Account],
    make_key: Callable[..., str],
) -> None:
    usage = mifumo("send", "Bila mpokeaji")
    assert usage.code == 2 and "--to" in usage.err
    assert mifumo("balance", key=None).code == 2

    wrong = mifumo("balance", key="mif_live_" + "x" * 32)
    assert wrong.code == 3 and "INVALID_CREDENTIALS" in wrong.err

    missing = mifumo("status", "msg_01J9Z8Q4W5X6Y7Z8A9B0C1D2E3")
    assert missing.code == 4 and "Request id:" in missing.err

    invalid = mifumo("--json", "send", "--to", "12345", "Habari")
    assert invalid.code == 5
    assert invalid.json()["error_code"] == "INVALID_PHONE"
    assert invalid.json()["details"]["invalid"][0]["phone"] == "12345"

    poor = make_key(make_account(balance="5.00"))
    assert mifumo("send", "--to", "0712345675", "Ghali", key=poor).code == 6

    limited = make_key(make_limited_account(sms_per_minute=1))
    assert mifumo("send", "--to", "0712345675", "Moja", key=limited).code == 0
    rate = mifumo("--max-retries", "0", "send", "--to", "0712345675", "Mbili", key=limited)
    assert rate.code == 7 and "RATE_LIMIT_EXCEEDED" in rate.err

    proxy = FaultyProxy(server.url)
    try:
        proxy.fail_next(Fault.HTML_502)
        broken = mifumo("--max-retries", "0", "balance", url=proxy.url)
    finally:
        proxy.close()
    assert broken.code == 8 and "not the API's JSON envelope" in broken.err

    unreachable = mifumo("--max-retries", "0", "balance", url=f"http://127.0.0.1:{closed_port()}")
    assert unreachable.code == 9 and "no answer" in unreachable.err


def test_templates_and_personalised_sends_from_the_command_line(
    mifumo: Cli, account: Account
) -> None:
    made = mifumo("--json", "templates", "create", "Oda", "Habari {{name|mteja}}, oda {{order}}")
    assert made.code == 0, made.err
    template = made.json()
    assert template["id"].startswith("tpl_") and template["placeholders"] == ["name", "order"]
    listed = mifumo("templates", "list")
    assert listed.code == 0 and template["id"] in listed.out and "name, order" in listed.out

    contact = mifumo(
        "--json", "contacts", "create", "Amina", "0712000305", "--field", "city=Moshi"
    ).json()
    assert contact["custom_fields"] == {"city": "Moshi"}
    changed = mifumo(
        "--json",
        "contacts",
        "update",
        contact["id"],
        "--field",
        "plan=gold",
        "--unset-field",
        "city",
    )
    assert changed.code == 0, changed.err
    assert changed.json()["custom_fields"] == {"plan": "gold"}

    sent = mifumo(
        "--json",
        "send",
        "--template",
        template["id"],
        "--var",
        "order=1043",
        "--to",
        "0712000305",
        "--to",
        "0712000315",
    )
    assert sent.code == 0, sent.err
    status = mifumo("--json", "status", sent.json()["message_id"]).json()
    texts = {row["phone"]: row["text"] for row in status["recipients"]}
    assert texts == {
        "+255712000305": "Habari Amina, oda 1043",
        "+255712000315": "Habari mteja, oda 1043",
    }
    assert {row["cost"] for row in status["recipients"]} == {10.0}


def test_send_refuses_a_wrong_template_command_line(mifumo: Cli, account: Account) -> None:
    both = mifumo("send", "Habari", "--template", "tpl_x", "--to", "0712000325")
    assert both.code == 2 and "not both" in both.err
    bad_var = mifumo("send", "--template", "tpl_x", "--var", "order", "--to", "0712000325")
    assert bad_var.code == 2 and "KEY=VALUE" in bad_var.err
    missing = mifumo("send", "--template", "tpl_0000000000000000000000000", "--to", "0712000325")
    assert missing.code == 4, missing.err
    unfilled = mifumo("send", "Habari {{order}}", "--to", "0712000325")
    assert unfilled.code == 5 and "order" in unfilled.err
    assert Message.objects.filter(account=account).count() == 0


def test_inbound_simulate_list_and_reply_from_the_command_line(
    server: Server, account: Account, make_key: Callable[..., str]
) -> None:
    number = f"+25570{random.randrange(10**7):07d}"
    number_assign(account=account, number=number)
    key = make_key(account, test=True)

    def mifumo(*args: str) -> Ran:
        return run(*args, key=key, url=server.url)

    simulated = mifumo("--json", "inbound", "simulate", "0712000335", number, "Bei gani?")
    assert simulated.code == 0, simulated.err
    inbound_id = simulated.json()["inbound_id"]
    assert simulated.json()["from"] == "+255712000335"

    listed = mifumo("inbound", "list")
    assert listed.code == 0, listed.err
    assert listed.out.split()[:6] == ["INBOUND_ID", "RECEIVED_AT", "FROM", "TO", "ACTION", "TEXT"]
    assert inbound_id in listed.out and "Bei gani?" in listed.out
    assert mifumo("--json", "inbound", "list", "--from", "0712000345").json() == []
    assert mifumo("inbound", "get", inbound_id).code == 0

    reply = mifumo("--json", "send", "Elfu kumi", "--reply-to", inbound_id)
    assert reply.code == 0, reply.err
    assert reply.json()["recipients"] == ["+255712000335"]
    assert mifumo("send", "Hapana").code == 2
