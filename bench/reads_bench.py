"""CPU per request of the read endpoints a client polls, against the shipped web server.

    .venv/bin/python -m bench.reads_bench [--seconds 8]

Sends 300 single-recipient messages (the simulator delivers at once) and makes 50 contacts,
then drives each endpoint with wrk (16 connections) in turn: a message's status, a page of
50 delivery reports, a contact search and ``/healthz``. For each it prints the rate and the
CPU per request of the web processes, PostgreSQL and Redis, read from /proc during the run.
"""

from __future__ import annotations

import argparse

from bench.common import call, fresh_account, gauged, web_server, wrk
from bench.jasmin_bench import CpuMeter, mifumo_processes

CONNECTIONS = 16


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    database = "mifumo_bench_reads"
    env, key = fresh_account(database, 8, MIFUMO_SIMULATOR_DELAY="0")
    with web_server(env) as base:
        message_id = ""
        for n in range(300):
            status, payload, _ms = call(
                base,
                "/api/integration/v1/sms/send/",
                key,
                {"message": f"Reads {n}", "recipients": [f"+25571{n:06d}5"]},
            )
            assert status == 200, payload
            message_id = payload["data"]["message_id"]
        for n in range(50):
            status, payload, _ms = call(
                base,
                "/api/integration/v1/contacts/create/",
                key,
                {"name": f"Customer {n}", "phone_number": f"+25575{n:07d}"},
            )
            assert status == 201, payload
        paths = {
            "status": f"/api/integration/v1/sms/status/{message_id}/",
            "reports": "/api/integration/v1/sms/delivery-reports/?per_page=50",
            "search": "/api/integration/v1/contacts/search/?q=Customer%201",
            "healthz": "/healthz",
        }
        auth = [f"Authorization: Bearer {key}"]
        port = int(base.rsplit(":", 1)[1])
        for name, path in paths.items():
            wrk(base + path, connections=CONNECTIONS, seconds=2, headers=auth)  # warm up
            meter = CpuMeter(mifumo_processes(port, database))
            meter.start()
            figures = wrk(base + path, connections=CONNECTIONS, seconds=args.seconds, headers=auth)
            cpu = meter.stop()
            requests = figures["rps"] * args.seconds
            per = {group: seconds / requests * 1000 for group, seconds in sorted(cpu.items())}
            print(
                f"{name:8s} {figures['rps']:7.0f} req/s  p99 {figures['p99']:6.1f} ms  CPU per "
                "request: "
                + ", ".join(f"{group} {ms:.2f}" for group, ms in per.items())
                + f", total {sum(per.values()):.2f} ms"
                + (f"  NON-2XX {figures['non_2xx']:.0f}" if figures["non_2xx"] else "")
            )


if __name__ == "__main__":
    with gauged():
        main()
