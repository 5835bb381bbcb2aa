"""``python manage.py run_smpp [--carrier NAME ...]``: the long-lived SMPP client process.

Why a process of its own: an SMPP bind is a persistent TCP session with a window of submits
in flight and a thread reading receipts. Held inside web or Celery worker processes it would
be opened once per process (SMSCs limit binds per account), torn down with every worker
recycle, and starved whenever the process is busy with something else. So the API and the
Celery workers never bind; this process holds one bind per SMPP carrier and does all of their
submitting.

How work reaches it (the database is the queue, as everywhere in Mifumo):

1. The Celery dispatch task claims queued recipients (``queued -> submitting``) and routes
   them. Recipients whose next carrier submits from its own process (``routing.
   runs_in_own_process``: SMPP backends, or ``DEDICATED_PROCESS: True``) get a ``Handoff``
   row for that carrier and stay ``submitting``, with their carrier set.
2. Here, one pump thread per carrier takes handoffs in recipient order (``SELECT ... FOR
   UPDATE SKIP LOCKED`` on PostgreSQL, then delete, so several run_smpp processes can share
   a carrier and none takes a recipient another took), submits them through the bind under
   the carrier's throughput cap, and records the results with the same code as the workers:
   carrier ids, refunds, status signals, ``SubmitAttempt`` rows. Accepted recipients are
   recorded within about 50 ms of their submit_sm_resp while the batch goes on, the rest when
   it ends; a bind with ``RATE`` paces itself continuously from batch to batch.
3. What the SMSC refuses for now fails over to the next carrier of the recipient's route
   (submitted from here if it is an ordinary carrier, handed off if it has a process of its
   own); with no carrier left the recipients go back to ``queued`` and a dispatch task is
   scheduled to retry them.
4. Receipts (deliver_sm) go to the sink ``settings.MIFUMO_RECEIPT_SINK`` names (by default
   ``sms.receipts.enqueue_receipts``: the receipts queue of the Celery workers, or inline when
   the broker is down). The SMSC gets deliver_sm_resp only after the sink took them.

When idle, a pump polls its handoffs every ``--idle`` seconds (an index-only query). The
process announces itself with a heartbeat in the cache; while it beats, the periodic sweep
leaves its backlog alone however long it is. If the process dies, whatever it had taken is
``submitting`` with an expired lease and its backlog has no heartbeat: the sweep takes both
back to ``queued`` and they are routed again.

Stopping: on SIGTERM or SIGINT each pump finishes the batch on the wire (the SMPP window in
flight), records it, and hands the recipients it had taken but not sent back to its carrier;
then every bind waits for outstanding submit_sm_resp, unbinds, and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connections

from mifumo import metrics
from sms import dispatch, routing
from sms.carriers import get_carrier, reset_carriers
from sms.carriers.base import CarrierError
from sms.checks import check_routes

logger = logging.getLogger("sms.run_smpp")

HEARTBEAT_EVERY = 5.0
MAX_BACKOFF = 30.0


class Pump(threading.Thread):
    """Takes one carrier's handoffs and submits them until told to stop."""

    def __init__(self, carrier: str, *, batch: int, idle: float, stop: threading.Event) -> None:
        super().__init__(name=f"run_smpp-{carrier}", daemon=True)
        self.carrier = carrier
        self.batch = batch
        self.idle = idle
        self.stop = stop
        self.sent = 0

    def run(self) -> None:
        backoff = 0.0
        try:
            while not self.stop.is_set():
                # A long-lived thread must drop a connection the database closed meanwhile.
                close_old_connections()
                try:
                    report = dispatch.handoff_dispatch(
                        carrier=self.carrier, limit=self.batch, stop=self.stop.is_set
                    )
                except Exception:
                    logger.exception("%s: a round of submissions failed", self.carrier)
                    connections.close_all()
                    backoff = min(max(1.0, backoff * 2), MAX_BACKOFF)
                    self.stop.wait(backoff)
                    continue
                if report is None:
                    self.stop.wait(self.idle)
                    continue
                self.sent += report.submitted
                if report.carrier_errors and not report.submitted:
                    # The SMSC is unreachable or refusing: give it time instead of failing
                    # the backlog over as fast as it can be taken.
                    backoff = min(max(1.0, backoff * 2), MAX_BACKOFF)
                    logger.warning("%s: carrier errors; pausing %.0fs", self.carrier, backoff)
                    self.stop.wait(backoff)
                else:
                    backoff = 0.0
        finally:
            connections.close_all()


class Command(BaseCommand):
    help = (
        "Hold the SMPP binds and submit every recipient routed to an SMPP carrier; "
        "stops cleanly on SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--carrier",
            action="append",
            dest="carriers",
            metavar="NAME",
            help="carrier of MIFUMO_CARRIERS to serve (repeatable); default: every carrier "
            "that submits from its own process",
        )
        parser.add_argument(
            "--batch", type=int, default=500, help="recipients taken per round (default 500)"
        )
        parser.add_argument(
            "--idle",
            type=float,
            default=0.2,
            help="seconds between looks for work when there is none (default 0.2)",
        )

    def handle(
        self, *args: Any, carriers: list[str] | None, batch: int, idle: float, **options: Any
    ) -> None:
        metrics.serve_worker_metrics()
        names = carriers or routing.dedicated_carriers()
        unknown = [name for name in names if name not in settings.MIFUMO_CARRIERS]
        if unknown:
            raise CommandError(f"not in MIFUMO_CARRIERS: {', '.join(unknown)}")
        if batch < 1 or idle <= 0:
            raise CommandError("--batch must be at least 1 and --idle above 0")
        for name in names:
            if not routing.runs_in_own_process(name):
                logger.warning(
                    "%s submits from the workers (DEDICATED_PROCESS is off); nothing will be "
                    "handed to this process for it",
                    name,
                )
        for problem in check_routes(databases=["default"]):
            logger.warning("%s", problem)

        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            if not stop.is_set():
                name = signal.Signals(signum).name
                logger.info("run_smpp: %s received, finishing the batch in flight", name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

        if not names:
            logger.info("run_smpp: no carrier submits from its own process; idle until stopped")
            self.stdout.write("run_smpp ready: no carriers", ending="\n")
            self.stdout.flush()
            stop.wait()
            return

        for name in names:
            self._bind(name)
        pumps = [Pump(name, batch=batch, idle=idle, stop=stop) for name in names]
        for pump in pumps:
            pump.start()
        self.stdout.write(f"run_smpp ready: {', '.join(names)}", ending="\n")
        self.stdout.flush()
        self._serve(names, pumps, stop)
        for pump in pumps:
            pump.join()
        reset_carriers()  # waits for outstanding submit_sm_resp and unbinds every session
        sent = sum(pump.sent for pump in pumps)
        self.stdout.write(f"run_smpp stopped: {sent} recipients submitted", ending="\n")
        self.stdout.flush()

    def _bind(self, name: str) -> None:
        """Bind at start so that bad credentials show at once; sending binds again lazily."""
        try:
            get_carrier(name).open()
        except CarrierError as exc:
            logger.error("%s: cannot bind yet: %s", name, exc)

    def _serve(self, names: list[str], pumps: list[Pump], stop: threading.Event) -> None:
        while True:
            for name in names:
                dispatch.carrier_process_heartbeat(carrier=name)
            if stop.wait(HEARTBEAT_EVERY):
                return
            if not any(pump.is_alive() for pump in pumps):
                raise CommandError("every pump thread has stopped")
