#!/bin/sh
# The container's entrypoint. The first argument chooses what this container runs:
#
#   migrate   apply migrations, then create the first dashboard admin (DJANGO_SUPERUSER_*)
#   web       the API and dashboard under granian (mifumo/web.py)
#   worker    a Celery worker; the remaining arguments go to it (--queues, --concurrency ...)
#   beat      the Celery scheduler (run exactly one)
#   anything else runs as given: python manage.py ..., celery ..., sh
#
# Outside Docker it runs from the repository root with the virtualenv on PATH.
set -eu

cd "$(dirname "$0")/.."

# Without a SECRET_KEY one is generated on the first start into the shared var volume, where
# the settings find it, so that every service (and every restart) signs and encrypts with
# the same key.
if [ -z "${SECRET_KEY:-}" ] && [ -z "${SECRET_KEY_FILE:-}" ]; then
  var_dir="${MIFUMO_VAR_DIR:-var}"
  key_file="$var_dir/secret_key"
  if [ ! -s "$key_file" ]; then
    mkdir -p "$var_dir"
    umask 077
    python -c 'import secrets; print(secrets.token_urlsafe(64))' >"$key_file.$$"
    # A hard link never replaces an existing file: of two services starting together, the
    # first one's key stays and both use it.
    ln "$key_file.$$" "$key_file" 2>/dev/null || true
    rm -f "$key_file.$$"
    umask 022
  fi
fi

# Samples of processes from an earlier start would be added to this run's counters.
fresh_metrics_dir() {
  if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  fi
}

wait_for_services() {
  python docker/wait_for_services.py
}

# The first dashboard admin (DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL, through
# createsuperuser --noinput) and, with MIFUMO_FIRST_ACCOUNT, an account it administers.
# Safe to run on every start.
bootstrap_admin() {
  python docker/bootstrap.py
}

command="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$command" in
  migrate)
    wait_for_services
    python manage.py migrate --noinput
    bootstrap_admin
    ;;
  web)
    fresh_metrics_dir
    wait_for_services
    exec python -m mifumo.web "$@"
    ;;
  worker)
    fresh_metrics_dir
    wait_for_services
    exec celery -A mifumo worker --loglevel "${LOG_LEVEL:-INFO}" \
      --without-gossip --without-mingle "$@"
    ;;
  beat)
    wait_for_services
    exec celery -A mifumo beat --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
