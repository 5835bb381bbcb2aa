"""Sending benchmarks against the web server + PostgreSQL + Redis on this machine.

    .venv/bin/python -m bench.send_bench            # all three
    .venv/bin/python -m bench.send_bench --only throughput|bulk|reports

1. single-recipient sends: requests/s, p50/p99 at 32 connections (wrk), beside a bare
   Django JSON view (/healthz) served by the same web server in the same run;
2. one send with 10,000 recipients: time to accept (validated, priced, debited, stored);
3. delivery reports with 1,000,000 recipient rows in the account: first page and a
   filtered page, p95;
4. one send to a 100,000-member segment: time to accept.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.common import (
    bench_env,
    call,
    fresh_database,
    manage,
    percentile,
    psql,
    setup_account,
    timed_gets,
    web_server,
    wrk,
)

SEND_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = '{"message": "Habari, your order is ready", "recipients": ["+255712345678"]}'
"""


def throughput(base: str, key: str, seconds: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(SEND_LUA % key)
    send_url = f"{base}/api/integration/v1/sms/send/"
    # Warm both up first: every worker's first requests open its connections (PostgreSQL,
    # Redis, the broker) and load what is loaded lazily (phone metadata, the routes).
    wrk(f"{base}/healthz", connections=32, seconds=3)
    bare = wrk(f"{base}/healthz", connections=32, seconds=seconds)
    wrk(send_url, connections=32, seconds=3, script=Path(script.name))
    send = wrk(send_url, connections=32, seconds=seconds, script=Path(script.name))
    print(
        f"bare view : {bare['rps']:8.0f} req/s  p50 {bare['p50']:6.1f} ms  "
        f"p99 {bare['p99']:6.1f} ms"
    )
    print(
        f"sms/send  : {send['rps']:8.0f} req/s  p50 {send['p50']:6.1f} ms  "
        f"p99 {send['p99']:6.1f} ms  non-2xx {send['non_2xx']:.0f}"
    )
    print(
        f"ratio     : {send['rps'] / bare['rps']:.0%} of the bare view (target >= 40%), "
        f"p99 target <= 100 ms"
    )


def bulk(base: str, key: str, runs: int) -> None:
    times = []
    for run in range(runs):
        phones = [f"+2557{(run * 7 + 1) % 10}{i:07d}" for i in range(10_000)]
        status, payload, ms = call(
            base, "/api/integration/v1/sms/send/", key, {"message": "Karibu", "recipients": phones}
        )
        assert status == 200, payload
        assert len(payload["data"]["recipients"]) == 10_000
        times.append(ms)
    print(
        f"10,000-recipient send: median {statistics.median(times):.0f} ms "
        f"(runs {', '.join(f'{t:.0f}' for t in times)}; target <= 1000 ms)"
    )


SEED_SQL = """
INSERT INTO sms_message (id, account_id, source, text, personalised, sender_id, encoding,
    segments, recipient_count, cost, currency, is_test, webhook_url, created_at)
SELECT 'msg_BENCH' || lpad(g::text, 17, '0'), {account}, 'api', 'seed', false, 'MIFUMO',
    'GSM-7', 1, 100, 1000.00, 'TZS', false, '', now() - (g || ' minutes')::interval
FROM generate_series(1, 10000) AS g;
INSERT INTO sms_recipient (message_id, account_id, created_at, phone, text, status, cost,
    carrier, carrier_message_id, error_code, error_message, attempts, sent_at, delivered_at,
    updated_at)
SELECT 'msg_BENCH' || lpad((1 + (g - 1) / 100)::text, 17, '0'), {account},
    now() - ((1 + (g - 1) / 100) || ' minutes')::interval,
    '+2557' || lpad((g % 100000000)::text, 8, '0'), '',
    (ARRAY['delivered','delivered','delivered','failed','sent'])[1 + g % 5],
    10.00, 'simulator', 'sim-' || g, '', '', 1, now(), now(), now()
FROM generate_series(1, 1000000) AS g;
ANALYZE sms_recipient;
"""


def seed(env: dict[str, str], sql: str) -> None:
    """Run ``sql`` (with ``{account}``: the bench account's id) in the bench database."""
    account = manage(
        env,
        "shell",
        "-c",
        "from integration.models import Account;print(Account.objects.get(name='bench').pk)",
    ).strip()
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    statement = sql.format(account=int(account.split()[-1]))
    psql(database, statement)


def reports(base: str, key: str, env: dict[str, str], samples: int) -> None:
    seed(env, SEED_SQL)
    # Each of the server's threads connects to PostgreSQL on its first request: warm them
    # with another read first, so that the reports' first request is about the reports.
    timed_gets(base, "/api/integration/v1/sms/balance/", key, 40)
    paths = {
        "first page": "/api/integration/v1/sms/delivery-reports/",
        "filtered page": "/api/integration/v1/sms/delivery-reports/?status=failed"
        "&start_date=2020-01-01T00:00:00Z&page=3&per_page=100",
    }
    for label, path in paths.items():
        times, payload = timed_gets(base, path, key, samples)
        print(
            f"delivery reports, {label}: p50 {percentile(times, 50):.1f} ms, "
            f"p95 {percentile(times, 95):.1f} ms over {samples} (target p95 <= 30 ms), "
            f"the first {times[0]:.1f} ms; "
            f"total {payload['data']['pagination']['total']}"
        )


CONTACTS_SQL = """
INSERT INTO contacts_contact (id, account_id, name, phone_number, email, tags, is_active,
    opted_out, created_at, updated_at)
SELECT 'con_BENCH' || lpad(g::text, 17, '0'), {account}, 'Contact ' || g,
    '+2557' || lpad((20000000 + g)::text, 8, '0'), '', '["customer"]'::jsonb, true, false,
    now(), now()
FROM generate_series(1, 100000) AS g;
ANALYZE contacts_contact;
"""


def segment_send(base: str, key: str, env: dict[str, str], runs: int) -> None:
    seed(env, CONTACTS_SQL)
    status, payload, _ = call(
        base,
        "/api/integration/v1/contacts/segments/create/",
        key,
        {"name": "Everyone", "criteria": {"tags": ["customer"]}},
    )
    assert status == 201, payload
    segment_id = payload["data"]["id"]
    assert payload["data"]["contact_count"] == 100_000
    times = []
    for _ in range(runs):
        status, payload, ms = call(
            base,
            "/api/integration/v1/sms/send/",
            key,
            {"message": "Ofa kubwa leo!", "segment_ids": [segment_id]},
        )
        assert status == 200, payload
        assert payload["data"]["from_segments"][segment_id] == 100_000
        times.append(ms)
    print(
        f"send to a 100,000-member segment: median {statistics.median(times):.0f} ms "
        f"(runs {', '.join(f'{t:.0f}' for t in times)}; target <= 3000 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["throughput", "bulk", "reports", "segment"])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    database = "mifumo_bench_send"
    fresh_database(database)
    env = bench_env(database)
    key = setup_account(env)
    with web_server(env, workers=args.workers) as base:
        if args.only in (None, "throughput"):
            throughput(base, key, args.seconds)
        if args.only in (None, "bulk"):
            bulk(base, key, runs=5)
        if args.only in (None, "reports"):
            reports(base, key, env, samples=100)
        if args.only in (None, "segment"):
            segment_send(base, key, env, runs=3)


if __name__ == "__main__":
    main()
