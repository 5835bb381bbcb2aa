"""Personalised sends against the web server + PostgreSQL + Redis on this machine.

    .venv/bin/python -m bench.personalised_send            # both
    .venv/bin/python -m bench.personalised_send --only send|count

1. one send to a 10,000-member segment whose contacts have two custom fields, with
   placeholders (rendered, measured, priced, debited, stored per recipient) next to the same
   send without placeholders: time to accept, median, the two alternating;
2. ``contact_count`` of a segment on a custom field in an account of 100,000 contacts.
"""

from __future__ import annotations

import argparse
import statistics

from bench.common import (
    bench_env,
    call,
    fresh_database,
    percentile,
    setup_account,
    timed_gets,
    web_server,
)
from bench.send_bench import seed

API = "/api/integration/v1"
# Two custom fields on every contact; the city splits the first 10,000 from the rest.
CONTACTS_SQL = """
INSERT INTO contacts_contact (id, account_id, name, phone_number, email, tags, custom_fields,
    is_active, opted_out, created_at, updated_at)
SELECT 'con_BENCH' || lpad(g::text, 17, '0'), {account}, 'Mteja ' || g,
    '+2557' || lpad((20000000 + g)::text, 8, '0'), '', '["customer"]'::jsonb,
    jsonb_build_object(
        'city', CASE WHEN g <= 10000 THEN 'Arusha' ELSE 'Dar es Salaam' END,
        'order_id', (1000 + g)::text
    ),
    true, false, now(), now()
FROM generate_series(1, {count}) AS g;
ANALYZE contacts_contact;
"""
PERSONALISED = "Habari {{name}}, oda yako {{order_id}} iko tayari {{city}}"
PLAIN = "Habari, oda yako iko tayari Arusha leo"


def segment(base: str, key: str, name: str, criteria: dict[str, object]) -> dict[str, object]:
    status, payload, _ = call(
        base, f"{API}/contacts/segments/create/", key, {"name": name, "criteria": criteria}
    )
    assert status == 201, payload
    return dict(payload["data"])


def send(base: str, key: str, runs: int) -> None:
    arusha = segment(base, key, "Arusha", {"custom_fields": {"city": "Arusha"}})
    assert arusha["contact_count"] == 10_000, arusha
    segment_id = arusha["id"]
    times: dict[str, list[float]] = {"personalised": [], "plain": []}
    for _ in range(runs):
        for label, text in (("personalised", PERSONALISED), ("plain", PLAIN)):
            status, payload, ms = call(
                base, f"{API}/sms/send/", key, {"message": text, "segment_ids": [segment_id]}
            )
            assert status == 200, payload
            assert payload["data"]["from_segments"][segment_id] == 10_000
            times[label].append(ms)
    for label, values in times.items():
        print(
            f"10,000-member segment, {label:12}: median {statistics.median(values):.0f} ms "
            f"(runs {', '.join(f'{t:.0f}' for t in values)}; target <= 1000 ms)"
        )


def count(base: str, key: str, samples: int) -> None:
    arusha = segment(base, key, "Arusha count", {"custom_fields": {"city": "Arusha"}})
    path = f"{API}/contacts/segments/{arusha['id']}/"
    times, payload = timed_gets(base, path, key, samples)
    print(
        f"segment on a custom field, 100,000 contacts: contact_count "
        f"{payload['data']['contact_count']}, GET p50 {percentile(times, 50):.1f} ms, "
        f"p95 {percentile(times, 95):.1f} ms over {samples} (target <= 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["send", "count"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    database = "mifumo_bench_personal"
    fresh_database(database)
    env = bench_env(database)
    key = setup_account(env)
    seed(env, CONTACTS_SQL.replace("{count}", "100000"))
    with web_server(env, workers=2) as base:
        if args.only in (None, "send"):
            send(base, key, args.runs)
        if args.only in (None, "count"):
            count(base, key, samples=100)


if __name__ == "__main__":
    main()
