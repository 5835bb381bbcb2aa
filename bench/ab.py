"""Two variants of the send (settings, or checkouts) measured side by side, in alternating
slices, so that the machine's drift falls on both alike.

    .venv/bin/python -m bench.ab [--a NAME=VALUE ...] [--b NAME=VALUE ...]
                                 [--a-root PATH] [--b-root PATH] [--pairs 8] [--seconds 10]

This machine's speed drifts by a third within minutes (``bench.common.gauge_ms``), more than
most changes move the CPU of a send, so whole runs of one variant and then the other compare
the machine's moments as much as the code. Here both variants run at once: each its own web
server in the shipped shape (``bench.common.web_server``, granian 2 × 4), its own fresh
database and Redis database, its environment overridden by ``--a``/``--b`` (say
``MIFUMO_SEND_FAST_PATH=false``) and its code from ``--a-root``/``--b-root`` (a ``git worktree``
of another commit; this checkout by default, run with this venv's Python). ``wrk`` at 32
connections sends one-recipient sends to each in turn for ``--seconds``, ``--pairs`` times,
the order swapped every pair; CPU per send comes from ``/proc`` as in ``bench.jasmin_bench``
(the web server's processes, its database's PostgreSQL backends, redis-server).

It prints each slice, the medians per variant, and the median of the pairs' differences
(B − A). Run it once with the same variant on both sides first: what that shows is the
instrument's own spread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import urllib.parse
from contextlib import ExitStack
from pathlib import Path

import redis

from bench.common import ROOT, fresh_account, gauged, web_server, wrk
from bench.jasmin_bench import Result, Target, measure, mifumo_processes
from bench.send_bench import SEND_LUA

SIDES = {"A": ("mifumo_bench_ab_a", 6), "B": ("mifumo_bench_ab_b", 7)}
GROUPS = ("web", "postgres", "redis")


def _overrides(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected NAME=VALUE, got {pair!r}")
        found[name] = value
    return found


def _per_send(result: Result) -> dict[str, float]:
    figures = {group: result.cpu.get(group, 0.0) * 1000 / result.requests for group in GROUPS}
    figures["total"] = result.cpu_ms()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for side in "ab":
        parser.add_argument(f"--{side}", nargs="*", default=[], metavar="NAME=VALUE")
        parser.add_argument(f"--{side}-root", type=Path, default=ROOT)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    options = {
        "A": (_overrides(args.a), args.a_root.resolve()),
        "B": (_overrides(args.b), args.b_root.resolve()),
    }
    with ExitStack() as stack, gauged():
        scripts = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ab-bench-")))
        targets: dict[str, Target] = {}
        for side, (database, redis_db) in SIDES.items():
            overrides, root = options[side]
            print(f"{side}: {root} {' '.join(f'{k}={v}' for k, v in overrides.items())}")
            env, key = fresh_account(database, redis_db, root=root, **overrides)
            stack.callback(redis.Redis.from_url(env["REDIS_URL"]).flushdb)
            base = stack.enter_context(web_server(env, root=root))
            script = scripts / f"{side}.lua"
            script.write_text(SEND_LUA % key)
            port = int(urllib.parse.urlsplit(base).port or 0)
            url = f"{base}/api/integration/v1/sms/send/"
            targets[side] = Target(side, url, script, mifumo_processes(port, database))
            wrk(url, connections=32, seconds=3, script=script)  # warm-up
        slices: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        for pair in range(args.pairs):
            for side in ("A", "B") if pair % 2 == 0 else ("B", "A"):
                result = measure(targets[side], args.seconds, pair)
                slices[side].append(_per_send(result))
                print(
                    f"pair {pair + 1} {side}: {result.figures['rps']:6.0f} sends/s, "
                    f"p99 {result.figures['p99']:6.1f} ms, {result.cpu_ms():.3f} ms a send "
                    f"({result.breakdown()})",
                    flush=True,
                )
        print()
        for group in ("total", *GROUPS):
            a = [figures[group] for figures in slices["A"]]
            b = [figures[group] for figures in slices["B"]]
            differences = [y - x for x, y in zip(a, b, strict=True)]
            medians = f"A {statistics.median(a):.3f}, B {statistics.median(b):.3f}"
            print(
                f"{group:>8} ms a send: {medians}; "
                f"B − A by pair: median {statistics.median(differences):+.3f} "
                f"({min(differences):+.3f} to {max(differences):+.3f})"
            )


if __name__ == "__main__":
    main()
