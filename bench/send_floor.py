"""What PostgreSQL alone accepts of one-recipient sends: the send's own statement, as the
application writes it, run by ``pgbench`` with no web server, no Python and no Redis.

    .venv/bin/python -m bench.send_floor [--seconds 15] [--clients 4,8,16] [--accounts 1,8]

A fresh database gets the bench account and seven more, each with a key. One send goes
through the WSGI application in place (``mifumo.wsgi``, as ``bench.instructions`` calls it),
and the statement it runs (``sms.send_statement``: the opt-out check, the debit with its
ledger row, the message and its recipient) is kept with its parameters written in. Only the
message's id (from a sequence) and the account (a ``pgbench`` variable) change from one run
of it to the next. ``pgbench`` then runs it prepared, one statement per transaction as the
application does, from each number of ``--clients`` in turn: with every send on one account,
then spread over the accounts (``--accounts``). It prints the sends per second, how busy the
machine's cores were (``/proc/stat``) and the CPU per send of PostgreSQL's backends and of
``pgbench`` itself (``/proc``, sampled as ``bench.jasmin_bench`` samples).

This is the ceiling of the send under everything above PostgreSQL: what the server can
commit, durably and one account's balance row at a time, with the web tier costing nothing.
It needs ``pgbench``, which comes with the PostgreSQL server (Debian's ``postgresql-15``).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, fresh_account, gauged, manage
from bench.jasmin_bench import CpuMeter, Proc, cmdline

DATABASE = "mifumo_bench_floor"
REDIS_DB = 6
ACCOUNTS = 8
SEQUENCE = "mifumo_bench_floor_ids"
# Stand-ins written into the statement where the account goes, then replaced.
ACCOUNT_MARK = 987_654_321


def child_statement(key: str, out: Path) -> None:
    """Send once through the application, keep the send's statement and write it to ``out``
    as a ``pgbench`` script: the account is ``:a``, the message's id a new one each run."""
    from bench.instructions import SEND, _caller, _ok, _send_body

    call = _caller(key)  # sets Django up
    import psycopg
    from django.db import connection

    import sms.send_statement as statement

    kept: dict[str, Any] = {}
    run = statement._run_prepared

    def keep(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
        kept.update(sql=sql, params=list(params))
        return run(sql, params)

    statement._run_prepared = keep
    try:
        sent = _ok(call("POST", SEND, "", _send_body(1)))
    finally:
        statement._run_prepared = run
    message_id = sent["data"]["message_id"]
    from sms.models import Message

    message = Message.objects.get(pk=message_id)
    account_id = message.account_id
    # Each account has one key, made in the same order, so key n is account n's: the
    # stand-in takes the place of both.
    assert message.api_key_id == account_id, (message.api_key_id, account_id)
    params = [
        ACCOUNT_MARK if type(value) is int and value == account_id else value
        for value in kept["params"]
    ]
    raw = connection.connection
    text = psycopg.ClientCursor(raw).mogrify(kept["sql"], params)
    quoted_id = f"'{message_id}'"
    assert quoted_id in text and str(ACCOUNT_MARK) in text and text.startswith("WITH ")
    text = text.replace(quoted_id, "(SELECT id FROM ids)").replace(str(ACCOUNT_MARK), ":a")
    text = f"WITH ids AS (SELECT 'msg_f' || nextval('{SEQUENCE}') AS id), " + text[5:]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
        cursor.execute("SELECT account_id, id FROM integration_apikey ORDER BY id")
        keys = cursor.fetchall()
    spread = [account for account, key in keys if account == key and account >= account_id]
    assert spread == list(range(account_id, account_id + len(spread))), keys
    out.write_text(f"{account_id} {spread[-1]}\n{' '.join(text.split())};\n")


def _pgbench() -> str:
    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        raise SystemExit("pgbench not found: it comes with the PostgreSQL server")
    return found


def _busy() -> tuple[int, int]:
    """The machine's busy and total jiffies so far (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _classify(proc: Proc) -> str | None:
    """PostgreSQL's backends of the bench database, and pgbench."""
    if proc.comm == "pgbench":
        return "pgbench"
    line = cmdline(proc.pid)
    if line.startswith("postgres: ") and f" {DATABASE} " in line:
        return "postgres"
    return None


def run(
    pgbench: str, script: Path, clients: int, seconds: int
) -> tuple[float, float, float, float]:
    """Sends per second, the share of the cores busy, PostgreSQL's and pgbench's CPU ms per
    send."""
    busy, total = _busy()
    meter = CpuMeter(_classify)
    meter.start()
    out = subprocess.run(
        [
            pgbench,
            *("-h", "127.0.0.1", "-U", "postgres", "-n", "-M", "prepared"),
            *("-j", "2", "-c", str(clients), "-T", str(seconds), "-f", str(script)),
            DATABASE,
        ],
        capture_output=True,
        text=True,
    )
    used = meter.stop()
    busy_after, total_after = _busy()
    if out.returncode:
        raise SystemExit(f"pgbench failed: {out.stderr.strip()[-2000:]}")
    lines = out.stdout.splitlines()
    done = next(line for line in lines if "actually processed" in line)
    sends = int(done.split(":")[1].split("/")[0])
    rate = next(float(line.split()[2]) for line in lines if line.startswith("tps"))
    share = (busy_after - busy) / (total_after - total)
    per_send = {name: used.get(name, 0.0) / sends * 1000 for name in ("postgres", "pgbench")}
    return rate, share, per_send["postgres"], per_send["pgbench"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", default="4,8,16")
    parser.add_argument("--accounts", default=f"1,{ACCOUNTS}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_statement(os.environ["MIFUMO_BENCH_KEY"], Path(args.child))
        return
    with gauged():
        measure(args)


def measure(args: argparse.Namespace) -> None:
    pgbench = _pgbench()
    env, key = fresh_account(DATABASE, REDIS_DB)
    for n in range(2, ACCOUNTS + 1):
        manage(env, "create_account", f"bench{n}", "--balance", "900000000")
        manage(env, "create_api_key", f"bench{n}", "--permissions", "admin")
    env["MIFUMO_BENCH_KEY"] = key
    with tempfile.TemporaryDirectory(prefix="send-floor-") as folder:
        kept = Path(folder) / "statement"
        subprocess.run(
            [PYTHON, "-m", "bench.send_floor", "--child", str(kept)], cwd=ROOT, env=env, check=True
        )
        bounds, statement = kept.read_text().split("\n", 1)
        first, last = (int(value) for value in bounds.split())
        print("accounts clients  sends/s  cores busy  CPU ms per send: PostgreSQL, pgbench")
        for accounts in (int(value) for value in args.accounts.split(",")):
            script = Path(folder) / f"send-{accounts}.sql"
            choose = f"random({first}, {first + accounts - 1})" if accounts > 1 else str(first)
            if first + accounts - 1 > last:
                raise SystemExit(f"at most {last - first + 1} accounts")
            script.write_text(f"\\set a {choose}\n{statement}")
            for clients in (int(value) for value in args.clients.split(",")):
                rate, busy, postgres, own = run(pgbench, script, clients, args.seconds)
                print(
                    f"{accounts:8d} {clients:7d} {rate:8.0f} {busy:10.0%}"
                    f"  {postgres:.3f}, {own:.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
