"""Inbound SMS: messages from phones per second through ``run_smpp``, from the local SMSC to
stored rows and queued ``message.received`` webhook events.

The test SMSC (``tests/carriers/smsc.py``) runs in this process; ``manage.py run_smpp`` runs
in its own, bound to it, with its one receipt thread storing what arrives (the "worker").
The SMSC pushes N single-part deliver_sm (GSM 7-bit, to a number the bench account receives
on, every tenth a STOP) as fast as the socket takes them; run_smpp answers each after the
inbound sink stored it: an InboundMessage row, routing, keyword matching (opt-outs and their
auto-replies for the STOPs) and, for an endpoint subscribed to ``message.received``, the event
and its delivery, whose task goes on the queue (no webhook worker runs; the queue is purged).
The figure is answered deliver_sm per second, from the first push to the last answer, and is
checked against the rows in the database.

    .venv/bin/python -m bench.inbound_bench [--count 20000] [--stop-every 10]

It creates its own database (``mifumo_bench_inbound``, dropped first) and uses Redis
database 15.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PYTHON,
    bench_env,
    fresh_database,
    manage,
    setup_account,
    start,
    stop,
)
from tests.carriers.smsc import ESME_ROK, Smsc  # noqa: E402

DATABASE = "mifumo_bench_inbound"
NUMBER = "15555"

ENDPOINT = """
from integration.models import Account
from webhooks.endpoints import endpoint_create
endpoint_create(account=Account.objects.get(name="bench"), url="http://127.0.0.1:9/in",
                events=["message.received"])
"""

COUNTS = """
from inbox.models import InboundMessage
from webhooks.models import Delivery, Event
print(InboundMessage.objects.count(), InboundMessage.objects.filter(action="opt_out").count(),
      Event.objects.filter(type="message.received").count(), Delivery.objects.count())
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--stop-every", type=int, default=10)
    args = parser.parse_args(argv)

    with Smsc() as smsc:
        env = bench_env(
            DATABASE,
            REDIS_URL="redis://127.0.0.1:6379/15",
            SMPP_HOST="127.0.0.1",
            SMPP_PORT=str(smsc.port),
            SMPP_SYSTEM_ID="mifumo",
            SMPP_PASSWORD="secret",
            MIFUMO_WEBHOOK_ALLOW_PRIVATE="true",
        )
        fresh_database(DATABASE)
        setup_account(env)
        manage(env, "assign_number", "bench", NUMBER)
        manage(env, "shell", "-c", ENDPOINT)
        runner = start(
            [PYTHON, "manage.py", "run_smpp", "--carrier", "smpp"], env, Path(os.devnull)
        )
        try:
            if not smsc.wait_until(lambda: bool(smsc.bound_sessions()), timeout=60):
                raise SystemExit("run_smpp did not bind")
            sequences: list[int] = []
            started = time.monotonic()
            for n in range(args.count):
                text = "STOP" if args.stop_every and n % args.stop_every == 0 else f"Habari {n}"
                sequences += smsc.deliver_mo(
                    text, source_addr=f"2557{n:08d}", destination_addr=NUMBER
                )
            pushed = time.monotonic() - started
            answered = smsc.wait_until(
                lambda: all(smsc.deliver_responses.get(s) == ESME_ROK for s in sequences),
                timeout=600,
            )
            elapsed = time.monotonic() - started
        finally:
            stop(runner, timeout=60)
        if not answered:
            done = sum(1 for s in sequences if smsc.deliver_responses.get(s) == ESME_ROK)
            raise SystemExit(f"only {done} of {len(sequences)} answered ESME_ROK")
    last = manage(env, "shell", "-c", COUNTS).strip().splitlines()[-1]
    stored, opted_out, events, deliveries = map(int, last.split())
    subprocess.run(
        ["redis-cli", "-n", "15", "FLUSHDB"], check=False, capture_output=True, text=True
    )
    stops = f"every {args.stop_every}th a STOP" if args.stop_every else "no STOPs"
    print(f"inbound messages:       {args.count} ({stops})")
    print(f"pushed by the SMSC in:  {pushed:.2f} s")
    print(f"all answered after:     {elapsed:.2f} s")
    print(f"stored / opt-outs:      {stored} / {opted_out}")
    print(f"message.received events: {events} (deliveries queued: {deliveries})")
    print(f"throughput:             {args.count / elapsed:,.0f} inbound/s")
    if stored != args.count or events != args.count:
        raise SystemExit("not every inbound message was stored with its event")


if __name__ == "__main__":
    main()
