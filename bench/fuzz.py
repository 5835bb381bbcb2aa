"""A long schemathesis run over every API operation, in-process, on a throwaway database.

    .venv/bin/python -m bench.fuzz [--examples 100]

On the servers of DATABASE_URL / REDIS_URL, or unset, those of a running `python3 dev.py run`.
A test database is created next to the configured one and dropped afterwards. Prints the
number of cases, the status codes seen and every failure; exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")
os.environ.setdefault("MIFUMO_ACCESS_LOG", "false")
os.environ.setdefault("LOG_LEVEL", "ERROR")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=100, help="cases per operation, mode, key")
    args = parser.parse_args()

    import django

    django.setup()
    # Thousands of expected 4xx warnings would bury the summary.
    logging.disable(logging.WARNING)

    from django.db import connection
    from django.test.utils import (
        override_settings,
        setup_test_environment,
        teardown_test_environment,
    )

    from mifumo.celery import app as celery_app

    setup_test_environment()
    # No broker here: dispatch runs inline, as in the test suite.
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        # Webhook URLs are validated without resolving them: the run may have no DNS.
        with override_settings(MIFUMO_USAGE_LOG_FLUSH_SIZE=1, MIFUMO_WEBHOOK_ALLOW_PRIVATE=True):
            from tests.security.test_fuzz_schema import fuzz_account, run_fuzz

            started = time.perf_counter()
            account, raw_keys, owned = fuzz_account()
            result = run_fuzz(account, raw_keys, owned, max_examples=args.examples)
            elapsed = time.perf_counter() - started
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()

    print(f"cases: {result.cases} in {elapsed:.1f}s")
    print(f"statuses: {dict(sorted(result.statuses.items()))}")
    print(f"failures: {len(result.failures)}")
    for line in sorted(set(result.failures)):
        print(f"  {line}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
