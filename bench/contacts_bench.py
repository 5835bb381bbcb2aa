"""Contacts and segments on PostgreSQL with 100,000 contacts in one account.

Requests go through the real stack (middleware, key authentication, rate limits, usage log,
view, envelope) with Django's test client in this process; no network hop is counted.
Measures:

* search by a name fragment and by a phone fragment (0712…, 712…, +255712… forms): p50/p95;
* contact_count of a tag segment (the selector, and GET of the segment through the API);
* importing a 50,000-row CSV of new numbers into that account as text/csv, then another
  gzip-compressed, then that one again with on_duplicate=update, then 50,000 more with an
  opted_out column, every 10th row true, and a webhook endpoint subscribed (5,000 opt-outs:
  history rows, contact.opted_out events and their deliveries);
* opted_out_phones over 100,000 numbers (the send path's opt-out check).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mifumo_bench_contacts \\
        .venv/bin/python bench/contacts_bench.py [--contacts 100000] [--requests 300]

The database is created and migrated when missing. A plain 50,000-row CSV is larger than
the default API body limit (MIFUMO_MAX_BODY_BYTES, 2 MiB), so this process raises that
limit to 16 MiB unless it is set; the gzip run shows what fits under the default.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inprocess import ensure_database  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/mifumo_bench_contacts"
os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
os.environ.setdefault("MIFUMO_MAX_BODY_BYTES", str(16 * 1024 * 1024))
# Production-like: no query log kept in memory.
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "contacts-bench-" + "x" * 40)
# In-process requests are plain HTTP; without this they would be redirected to HTTPS.
os.environ.setdefault("MIFUMO_HTTPS", "0")
# The opt-out run's endpoint is on this machine (nothing listens; no worker delivers here).
os.environ.setdefault("MIFUMO_WEBHOOK_ALLOW_PRIVATE", "1")

ACCOUNT = "bench-contacts"


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Asha Neema Juma Baraka Rehema Khamis Zawadi Hamisi Mwanaisha Omari Amina Salim Fatuma "
    "Yusuf Grace Daudi Mariam Hassani Upendo Issa Halima Musa Furaha Ally Zuhura Peter Agnes "
    "John Esther Joseph Rose Emmanuel Lucy Samuel Joyce Elias Anna Paulo Sophia Frank"
)
LAST = _words(
    "Mwinyi Kombo Mushi Massawe Lyimo Mrema Kimaro Swai Shirima Mollel Laizer Nyerere Magufuli "
    "Kikwete Mkapa Sumaye Lowassa Pinda Malisa Temba Urassa Minja Mbwambo Mallya Moshi Mtei "
    "Kweka Tarimo Kessy Ngowi Mwakyusa Mwamba Mbeya Kapinga Komba Haule Ndunguru Nchimbi"
)
TAGS = _words(
    "vip customer lead premium wholesale retail dar arusha mwanza dodoma newsletter "
    "inactive-2023 church school sacco"
)
PREFIXES = ("71", "74", "75", "76", "77", "78", "65", "67", "68", "69", "62")


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def report(label: str, samples_ms: list[float], budget_ms: float | None = None) -> None:
    p50, p95 = statistics.median(samples_ms), percentile(samples_ms, 95)
    verdict = "" if budget_ms is None else (" ok" if p95 <= budget_ms else " OVER BUDGET")
    limit = "" if budget_ms is None else f" (budget p95 <= {budget_ms:.0f} ms)"
    print(
        f"{label:<46} n={len(samples_ms):<4} p50={p50:7.2f} ms  p95={p95:7.2f} ms  "
        f"max={max(samples_ms):7.2f} ms{limit}{verdict}"
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000, value


def phone_pool(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    phones: list[str] = []
    while len(phones) < count:
        number = f"+255{rng.choice(PREFIXES)}{rng.randrange(10_000_000):07d}"
        if number not in taken:
            taken.add(number)
            phones.append(number)
    return phones


def populate(account: Any, count: int, rng: random.Random, taken: set[str]) -> list[Any]:
    from contacts.models import Contact

    start = datetime(2023, 1, 1, tzinfo=UTC)
    contacts = []
    for n, number in enumerate(phone_pool(rng, count, taken)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        contacts.append(
            Contact(
                account=account,
                name=f"{first} {last}",
                phone_number=number,
                email=f"{first}.{last}{n}@example.com".lower() if rng.random() < 0.7 else "",
                tags=rng.sample(TAGS, rng.choice((0, 1, 1, 2, 2, 3))),
                is_active=rng.random() < 0.9,
                opted_out=rng.random() < 0.03,
                created_at=start + timedelta(seconds=rng.randrange(2 * 365 * 86400)),
            )
        )
    Contact.objects.bulk_create(contacts, batch_size=5_000)
    return contacts


def name_fragments(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        word = rng.choice(FIRST + LAST)
        size = rng.choice((3, 4, 5))
        at = rng.randrange(max(len(word) - size, 0) + 1)
        out.append(word[at : at + size].lower())
    return out


def phone_fragments(rng: random.Random, phones: list[str], n: int) -> list[str]:
    out = []
    for _ in range(n):
        national = rng.choice(phones)[4:]  # 9 digits after +255
        size = rng.choice((4, 5, 6, 7, 9))
        form = rng.choice(("local", "bare", "international", "middle"))
        if form == "local":
            out.append("0" + national[:size])
        elif form == "bare":
            out.append(national[:size])
        elif form == "international":
            out.append("+255" + national[:size])
        else:
            at = rng.randrange(1, 9 - 5)
            out.append(national[at : at + 5])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--import-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://…")
    ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    # One access-log line per request would bury the figures.
    logging.getLogger("mifumo.access").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from contacts.models import Contact
    from contacts.selectors import opted_out_phones
    from integration.models import Account, Permission
    from integration.services import account_create, api_key_create
    from segments.models import Segment
    from segments.selectors import segment_contact_count
    from webhooks.endpoints import endpoint_create, endpoint_delete

    call_command("migrate", verbosity=0)
    one, five, fifteen = os.getloadavg()
    print(f"load average at start: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)")
    rng = random.Random(args.seed)

    Account.objects.filter(name=ACCOUNT).delete()
    account = account_create(name=ACCOUNT)
    # Far above what the benchmark sends, as an operator would set for a bulk customer.
    Account.objects.filter(pk=account.pk).update(api_per_hour=10**6, contacts_per_hour=10**6)
    key = api_key_create(account=account, name="bench", permission=Permission.ADMIN, test=False)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    api = "/api/integration/v1/contacts/"

    taken: set[str] = set()
    elapsed, contacts = timed(lambda: populate(account, args.contacts, rng, taken))
    print(f"{args.contacts} contacts inserted in {elapsed / 1000:.1f} s (bulk_create, setup)")
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Contact._meta.db_table}")
    phones = [c.phone_number for c in contacts]

    def get(path: str, params: dict[str, Any]) -> float:
        ms, response = timed(lambda: client.get(path, params))
        assert response.status_code == 200, response.content[:300]
        return ms

    for fragment in name_fragments(rng, 30) + phone_fragments(rng, phones, 30):
        get(api + "search/", {"q": fragment})

    print()
    samples = [get("/api/integration/v1/sms/balance/", {}) for _ in range(100)]
    report("baseline: GET sms/balance/ (auth, limits, log)", samples)
    matches: list[tuple[str, int]] = []
    samples = []
    for fragment in name_fragments(rng, args.requests):
        samples.append(get(api + "search/", {"q": fragment}))
    report("search, name fragment (GET search/?q=)", samples, 30)

    samples = []
    for fragment in phone_fragments(rng, phones, args.requests):
        samples.append(get(api + "search/", {"q": fragment}))
        if len(matches) < 3:
            total = client.get(api + "search/", {"q": fragment}).json()["data"]["pagination"]
            matches.append((fragment, total["total"]))
    report("search, phone fragment (0712…/712…/+255712…)", samples, 30)
    print(f"{'':<46} e.g. {', '.join(f'{q!r} -> {t} hits' for q, t in matches)}")

    samples = [get(api + "search/", {"offset": rng.randrange(0, 5_000)}) for _ in range(100)]
    report("list without q (limit 20, random offset)", samples)

    segment = Segment.objects.create(account=account, name="VIP", criteria={"tags": ["vip"]})
    any_of = Segment.objects.create(
        account=account, name="Regions", criteria={"tags": ["dar", "arusha", "mwanza"]}
    )
    combined = Segment.objects.create(
        account=account,
        name="Active VIP 2024",
        criteria={
            "tags_all": ["vip", "customer"],
            "is_active": True,
            "created_after": "2024-01-01",
        },
    )
    for seg in (segment, any_of, combined):
        samples = []
        for _ in range(50):
            start = time.perf_counter()
            count = segment_contact_count(segment=seg)
            samples.append((time.perf_counter() - start) * 1000)
        report(f"contact_count {seg.criteria} = {count}"[:46], samples, 50)
    samples = [get(f"{api}segments/{segment.id}/", {}) for _ in range(50)]
    report("GET segments/{id}/ (with contact_count)", samples, 50)
    samples = [get(f"{api}segments/{segment.id}/contacts/", {}) for _ in range(50)]
    report("GET segments/{id}/contacts/ (first page)", samples)

    print()
    asked = phone_pool(rng, args.contacts // 2, set(taken)) + rng.sample(phones, args.contacts // 2)
    ms, found = timed(lambda: opted_out_phones(account=account, phones=asked))
    print(f"opted_out_phones over {len(asked)} numbers: {ms:.0f} ms ({len(found)} opted out)")

    print()

    def csv_file(opt_outs: bool = False) -> bytes:
        rows = []
        for n, number in enumerate(phone_pool(rng, args.import_rows, taken)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first}.{last}.i{n}@example.com".lower() if n % 10 < 7 else ""
            tags = ";".join(rng.sample(TAGS, 2))
            opted_out = ("," + ("true" if n % 10 == 0 else "false")) if opt_outs else ""
            rows.append(f"{first} {last},0{number[4:]},{email},{tags},true{opted_out}\n")
        header = "name,phone_number,email,tags,is_active" + (",opted_out" if opt_outs else "")
        return (header + "\n" + "".join(rows)).encode()

    def post(data: bytes, query: str = "") -> tuple[float, dict[str, Any]]:
        ms, response = timed(
            lambda: client.post(api + "import/" + query, data=data, content_type="text/csv")
        )
        assert response.status_code == 200, response.content[:300]
        return ms, response.json()["data"]

    body = csv_file()
    ms, result = post(body)
    print(
        f"import {args.import_rows} new rows, plain CSV ({len(body) / 2**20:.1f} MiB): "
        f"{ms / 1000:.2f} s  created={result['created']} failed={result['failed']}  "
        f"(budget <= 10 s){' ok' if ms <= 10_000 else ' OVER BUDGET'}"
    )
    packed = gzip.compress(csv_file())
    ms, result = post(packed)
    print(
        f"import {args.import_rows} new rows, gzip ({len(packed) / 2**20:.2f} MiB, fits the "
        f"2 MiB default): {ms / 1000:.2f} s  created={result['created']}"
    )
    ms, result = post(packed, "?on_duplicate=update")
    print(
        f"re-import those {args.import_rows} rows, on_duplicate=update: {ms / 1000:.2f} s  "
        f"updated={result['updated']}"
    )
    endpoint = endpoint_create(
        account=account, url="http://127.0.0.1:9/in", events=["contact.opted_out"]
    )
    packed = gzip.compress(csv_file(opt_outs=True))
    ms, result = post(packed)
    print(
        f"import {args.import_rows} new rows with opted_out, every 10th true, an endpoint "
        f"subscribed: {ms / 1000:.2f} s  created={result['created']} "
        f"opted_out={result['opted_out']}  (budget <= 10 s){' ok' if ms <= 10_000 else ' OVER'}"
    )
    endpoint_delete(endpoint=endpoint)  # its queued deliveries go with it
    total = Contact.objects.filter(account=account).count()
    print(f"\naccount now holds {total} contacts; run again to start from scratch")
    one, five, fifteen = os.getloadavg()
    print(f"load average at end: {one:.2f} {five:.2f} {fifteen:.2f}")


if __name__ == "__main__":
    main()
