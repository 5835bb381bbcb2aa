"""Fault scenarios at benchmark scale, printing their figures: a worker SIGKILLed mid-dispatch,
Redis down for 30 s under a stream of sends, PostgreSQL restarted under sends, beat down while
scheduled messages fall due, the SMSC cutting its binds every few seconds for a minute of sends
over SMPP, a webhook receiver flapping for a minute of sends.

Each runs on a private PostgreSQL cluster and Redis (never the shared ones), through the same
code as ``tests/reliability``, with longer outages and more load:

    .venv/bin/python -m bench.faults [kill|redis|postgres|beat|smpp|webhooks ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")

import django

# The scenarios import models, which need configured settings.
django.setup()

from tests.carriers.smsc import Smsc  # noqa: E402
from tests.reliability import (  # noqa: E402
    test_beat_restart,
    test_postgres_restart,
    test_redis_outage,
    test_smpp_drops,
    test_webhook_flapping,
    test_worker_kill,
)
from tests.reliability.services import open_stack  # noqa: E402


def _kill(workdir: Path) -> None:
    with open_stack(workdir) as services:
        test_worker_kill.test_sigkilled_worker_loses_nothing_and_repeats_at_most_one_batch(services)


def _redis(workdir: Path) -> None:
    test_redis_outage.OUTAGE_SECONDS = 30
    test_redis_outage.SEND_INTERVAL = 0.05
    with open_stack(workdir) as services:
        test_redis_outage.test_sends_during_a_redis_outage_are_stored_and_dispatched_later(services)


def _postgres(workdir: Path) -> None:
    test_postgres_restart.OUTAGE_SECONDS = 15
    test_postgres_restart.CLIENTS = 7  # one mobile prefix each, 71 to 77
    with open_stack(workdir) as services:
        test_postgres_restart.test_sends_while_postgres_restarts_answer_503_then_resume(services)


def _beat(workdir: Path) -> None:
    test_beat_restart.MESSAGES = 200
    with open_stack(workdir) as services:
        test_beat_restart.test_messages_due_while_beat_is_down_go_once_after_it_returns(services)


def _smpp(workdir: Path) -> None:
    drops = test_smpp_drops
    drops.SEND_SECONDS = 60
    with (
        open_stack(workdir) as services,
        Smsc(auto_receipt="DELIVRD", latency=drops.LATENCY, redeliver_receipts=True) as smsc,
    ):
        drops.test_binds_cut_during_a_stream_of_sends_lose_nothing_and_repeat_only_unacknowledged(
            services, smsc
        )


def _webhooks(workdir: Path) -> None:
    flapping = test_webhook_flapping
    flapping.FLAP_SECONDS = 60
    receiver = flapping.FlappingReceiver()
    try:
        with open_stack(workdir) as services:
            flapping.test_a_flapping_receiver_gets_every_event_at_least_once_and_repeats_only_unanswered(
                services, receiver
            )
    finally:
        receiver.close()


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "kill": _kill,
    "redis": _redis,
    "postgres": _postgres,
    "beat": _beat,
    "smpp": _smpp,
    "webhooks": _webhooks,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)}; all")
    names = parser.parse_args().scenarios or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    for name in names:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"mifumo-faults-{name}-") as workdir:
            SCENARIOS[name](Path(workdir))
        print(f"{name}: passed in {time.monotonic() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
