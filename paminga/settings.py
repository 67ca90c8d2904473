"""Paminga settings, read from the environment through django-environ.

Every variable is documented in `.env.example`. The defaults run a fresh clone with no services:
a SQLite file for the database and Celery tasks executed in-process.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-development-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    # Fail closed: a public fallback key would let anyone forge sessions, CSRF tokens and signed contact links.
    # `make run` sets DEBUG=1 (a development key then); the tests set their own key (tests/settings.py).
    raise ImproperlyConfigured("SECRET_KEY is not set: set it in the environment or .env (see .env.example).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL of this server for the beacon install snippet and emailed links (paminga/site.py). Empty: the
# scheme and host each request came in on, so a server on another port or host names itself correctly.
SITE_URL = env("SITE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "graphene_django",
    "paminga",
    "custom_events",
    "tracking",
    "automations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "paminga.urls"
WSGI_APPLICATION = "paminga.wsgi.application"
ASGI_APPLICATION = "paminga.asgi.application"

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
                "paminga.context_processors.current_account",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database host that drops packets must fail a request in seconds (capture then queues, the beacon script is
    # served), not hold it past the proxy's timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", 3))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (runserver threads, the in-process tasks) wait instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
# A PostgreSQL streaming replica for report reads (paminga/replica.py): the report pages, their CSV exports and the
# GraphQL report queries read it while it is up and less than REPLICA_MAX_LAG_SECONDS behind (checked at most
# every REPLICA_CHECK_SECONDS per process); writes, and reads that must see their own writes, stay on the primary.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"]["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    # A replica that does not answer is skipped after this, not waited for.
    DATABASES["replica"].setdefault("OPTIONS", {})["connect_timeout"] = 2
    # The test suite has no replica of its test database: the alias reads the primary's.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["paminga.replica.ReplicaRouter"]
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=30.0)
REPLICA_CHECK_SECONDS = env.float("REPLICA_CHECK_SECONDS", default=5.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": env.cache("CACHE_URL", default="locmemcache://paminga"),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Without collectstatic (development, tests), WhiteNoise serves files straight from the finders.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
WHITENOISE_MANIFEST_STRICT = False

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Paminga <notifications@paminga.local>")

# CORS: only the beacon's collect endpoint (and its first-party alias, /p/<site key>/e) answers cross-origin
# requests, and only for origins among the account's own domains (see tracking.cors).
CORS_URLS_REGEX = r"^/((collect|t)/.*|p/[^/]+/e)$"
CORS_ALLOW_CREDENTIALS = False
# The beacon reads Retry-After on a 429 to know when to send again (not a CORS-safelisted header).
CORS_EXPOSE_HEADERS = ["Retry-After"]

# Celery. An empty broker URL runs every task in-process, so `make run` needs no Redis.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 30
CELERY_TASK_TIME_LIMIT = 60
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_TIMEZONE = "UTC"

GRAPHENE = {
    "SCHEMA": "paminga.graphql.schema",
    "MIDDLEWARE": ["paminga.graphql_core.ErrorMaskingMiddleware"],
    "ATOMIC_MUTATIONS": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # axes logs every login at INFO; its warnings (lockouts) are what operators need.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
# (TLS, HSTS and secure cookies: the "Hardening" block at the end.)

# Automations (docs/automations.md).
# Attempts per action run before it fails for good; transient failures wait 10 s, 20 s, 40 s, ... between them.
AUTOMATIONS_MAX_ATTEMPTS = env.int("AUTOMATIONS_MAX_ATTEMPTS", default=5)
AUTOMATIONS_RETRY_BACKOFF_SECONDS = env.int("AUTOMATIONS_RETRY_BACKOFF_SECONDS", default=10)
AUTOMATIONS_RETRY_BACKOFF_MAX_SECONDS = env.int("AUTOMATIONS_RETRY_BACKOFF_MAX_SECONDS", default=15 * 60)
# The sweep re-enqueues runs still pending (or overdue for a retry) after this long: lost to a broker outage.
AUTOMATIONS_SWEEP_AFTER_SECONDS = env.int("AUTOMATIONS_SWEEP_AFTER_SECONDS", default=120)
# A run still "running" after this long lost its worker (crash, or the hard time limit): it is retried.
AUTOMATIONS_STALE_RUNNING_SECONDS = env.int("AUTOMATIONS_STALE_RUNNING_SECONDS", default=300)
# Runs waiting for an anonymous visitor to be identified are skipped after this many days.
AUTOMATIONS_WAITING_EXPIRE_DAYS = env.int("AUTOMATIONS_WAITING_EXPIRE_DAYS", default=30)
# After a failed publish, a process leaves new runs to the sweep for this long instead of waiting on the broker.
AUTOMATIONS_BROKER_BACKOFF_SECONDS = env.float("AUTOMATIONS_BROKER_BACKOFF_SECONDS", default=5.0)
# Webhooks to private, loopback and link-local addresses are refused unless this is set (development, tests).
AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=DEBUG)
# Celery's Django fixup closes the database connection around every task unless this is set, so each task would
# pay a new PostgreSQL connection; workers reuse it for this many tasks instead, and paminga.celery closes it
# earlier when Django would (CONN_MAX_AGE, errors), as it does between requests.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

# Reporting: the periodic task that brings the report rollups up to date (docs/reporting.md);
# `manage.py reports_rollup` does the same by hand.
REPORT_ROLLUP_INTERVAL_SECONDS = env.int("REPORT_ROLLUP_INTERVAL_SECONDS", default=300)

# Celery beat: the automations sweep (runs lost to a broker outage) and the report rollups.
CELERY_BEAT_SCHEDULE = {
    "automations-action-runs-sweep": {
        "task": "automations.tasks.action_runs_sweep_task",
        "schedule": env.float("AUTOMATIONS_SWEEP_INTERVAL_SECONDS", default=60.0),
    },
    "report-rollups-update": {
        "task": "automations.reports.tasks.report_rollups_update_task",
        "schedule": float(REPORT_ROLLUP_INTERVAL_SECONDS),
    },
}
CELERY_IMPORTS = ["automations.reports.tasks"]

# Deletes of custom events, marketing sources and accounts run in the background (automations/deletes.py), this
# many rows per statement and transaction: each batch holds its row locks for a few milliseconds.
BACKGROUND_DELETE_BATCH_SIZE = env.int("BACKGROUND_DELETE_BATCH_SIZE", default=2000)
# After each batch the task rests this many times as long as the batch took (1: at most half of one core and of the
# database's time), so that capture, reports and the API keep their latency while a large delete runs.
BACKGROUND_DELETE_REST_RATIO = env.float("BACKGROUND_DELETE_REST_RATIO", default=1.0)
CELERY_BEAT_SCHEDULE["background-deletes-resume"] = {
    "task": "automations.tasks.background_deletes_resume_task",
    "schedule": 600.0,
}

# Joins between two of an account's tables (paminga/fields.py, AccountForeignKey) match the account as well as the
# id: what distributing the tables by account (docs/scaling.md, Citus) needs of every join. Off on one PostgreSQL,
# whose planner takes the two conditions for independent and underestimates every such join by the number of
# accounts (at 60 accounts an export page went from index look-ups to hash joins and a sort on disk, 6× slower).
JOINS_MATCH_ACCOUNT = env.bool("JOINS_MATCH_ACCOUNT", default=False)

# Tracking (docs/tracking.md). The event debugger keeps at most this many entries per account, and writes at most
# this many per account and minute, so a flood of bad hits cannot fill the database.
TRACKING_DEBUGGER_KEEP = env.int("TRACKING_DEBUGGER_KEEP", default=500)
TRACKING_DEBUGGER_MAX_PER_MINUTE = env.int("TRACKING_DEBUGGER_MAX_PER_MINUTE", default=60)
# Signed contact links (?pm_ct=...) stop identifying visitors after this many days.
TRACKING_CONTACT_LINK_MAX_AGE_DAYS = env.int("TRACKING_CONTACT_LINK_MAX_AGE_DAYS", default=180)
# bench/collect_bench.py's baseline view at /bench/noop; off (404) unless set.
BENCH_NOOP_VIEW = env.bool("BENCH_NOOP_VIEW", default=False)

# Ingestion (docs/tracking.md, "The write path"). With INGEST_QUEUE_URL set (a Redis URL, a plain server or any node of
# a Redis Cluster), capture appends every accepted hit and API event to a Redis Stream and answers at once;
# `manage.py ingest` records them in batches. Unset, capture records each item inline with the same ingester.
INGEST_QUEUE_URL = env("INGEST_QUEUE_URL", default="")
# Streams the queue is split into, by a hash of the visitor (or contact): the unit of order and of scale-out (one
# consumer reads a shard at a time). Change it only with the queue drained.
INGEST_SHARDS = env.int("INGEST_SHARDS", default=8)
# Above this many waiting items capture answers 503 with Retry-After instead of filling Redis's memory.
INGEST_QUEUE_MAX_DEPTH = env.int("INGEST_QUEUE_MAX_DEPTH", default=2_000_000)
# A request waits this long for the queue before ingesting inline; after a failure, this process ingests inline for
# INGEST_QUEUE_RETRY_SECONDS before it tries the queue again.
INGEST_QUEUE_TIMEOUT_SECONDS = env.float("INGEST_QUEUE_TIMEOUT_SECONDS", default=0.5)
INGEST_QUEUE_RETRY_SECONDS = env.float("INGEST_QUEUE_RETRY_SECONDS", default=2.0)
# What the 503 answers tell the beacon and API clients to wait.
INGEST_RETRY_AFTER_SECONDS = env.int("INGEST_RETRY_AFTER_SECONDS", default=5)
# The ingester's batches: up to this many items, or what arrived within this many milliseconds.
INGEST_BATCH_SIZE = env.int("INGEST_BATCH_SIZE", default=500)
INGEST_BATCH_WAIT_MS = env.int("INGEST_BATCH_WAIT_MS", default=100)
# A consumer holds its shards for this long between renewals; a stopped consumer's shards move after it.
INGEST_LEASE_SECONDS = env.float("INGEST_LEASE_SECONDS", default=10.0)
# How long the key of a recorded hit or API event is kept (tracking.models.RecordedKey): a repeat within it is
# recognised and not recorded again. The beacon gives up on a hit after a day.
INGEST_KEY_DAYS = env.int("INGEST_KEY_DAYS", default=7)
# The partition task (tracking.partitions): creates the coming months' partitions ahead and prunes old keys.
CELERY_BEAT_SCHEDULE["tracking-partitions-maintain"] = {
    "task": "tracking.tasks.partitions_maintain_task",
    "schedule": env.float("PARTITIONS_INTERVAL_SECONDS", default=6 * 3600.0),
}

# --- Privacy: raw data retention (docs/privacy.md) ----------------------------------------------------------------
# Each account's retention period is its own setting; this is how the periodic job deletes. Rows per batch: each
# batch is one short transaction, so capture never waits on it.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
RETENTION_INTERVAL_SECONDS = env.int("RETENTION_INTERVAL_SECONDS", default=6 * 3600)
# How often retention deletes an account's page texts that no row uses any more (tracking.texts): each purge reads
# all of the account's rows, so it runs at most this often (and after a month's partitions are dropped, and for an
# erasure whose own purge never ran).
PAGE_TEXTS_PURGE_DAYS = env.int("PAGE_TEXTS_PURGE_DAYS", default=7)
CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    "privacy-retention-run": {
        "task": "automations.tasks.retention_run_task",
        "schedule": float(RETENTION_INTERVAL_SECONDS),
    },
}

# --- Hardening: TLS, Content-Security-Policy, login lockout, rate limits, GraphQL cost limits (docs/operations.md) ---

# One switch for a server behind a TLS-terminating proxy: trust its X-Forwarded-Proto, mark the session and CSRF
# cookies Secure, and send HSTS. The proxy must overwrite X-Forwarded-Proto (never pass a client's own through).
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("HSTS_INCLUDE_SUBDOMAINS", default=False)
# SECURE_COOKIES is kept for existing .env files; BEHIND_TLS_PROXY alone is enough.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=BEHIND_TLS_PROXY)

# Content-Security-Policy on every answer (django-csp): scripts only from our own static files or inline with the
# request's nonce, so an injected <script> or on* attribute does not run. Inline style attributes stay allowed: the
# report bars set their width that way and GraphiQL styles its own elements.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

INSTALLED_APPS += ["csp", "axes"]
# django-csp's middleware, skipping the responses views exempt (paminga/middleware.py).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "paminga.middleware.CSPMiddleware"
)
# Axes last, as its documentation asks: it answers a locked-out login after the view has run the authentication.
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Login lockout (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one email, or from one address, further
# attempts are refused (429, with the reason) for LOGIN_LOCKOUT_MINUTES, the right password included. Attempts are
# counted in the shared cache, so every server process sees them; a successful login resets the email's count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AXES_COOLOFF_TIME = LOGIN_LOCKOUT_MINUTES / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "paminga.views.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "paminga.ratelimit.client_address"
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # The per-process cache is for development (one process); production sets CACHE_URL to Redis.
    SILENCED_SYSTEM_CHECKS = ["axes.W001"]

# Rate limits, "COUNT/SECONDS" (0 turns one off), counted in the shared cache (CACHE_URL) so they hold across
# processes. Over a limit the answer is 429 with Retry-After and a JSON {code, message} (a GraphQL error on /graphql/).
# PROXY_COUNT: how many proxies in front append to X-Forwarded-For; the client address is the entry they did not
# write (0: REMOTE_ADDR, the only safe value without a proxy, since clients can send any X-Forwarded-For).
PROXY_COUNT = env.int("PROXY_COUNT", default=0)
# Beacon hits per site key and per client address. Generous: a busy site, or a whole office behind one address.
RATE_LIMIT_COLLECT_PER_SITE_KEY = env("RATE_LIMIT_COLLECT_PER_SITE_KEY", default="30000/60")
RATE_LIMIT_COLLECT_PER_ADDRESS = env("RATE_LIMIT_COLLECT_PER_ADDRESS", default="600/60")
# GraphQL: failed API key authentications per address (then every key is refused from it for the rest of the
# window), and calls per API key.
RATE_LIMIT_API_FAILURES_PER_ADDRESS = env("RATE_LIMIT_API_FAILURES_PER_ADDRESS", default="20/300")
RATE_LIMIT_API_CALLS_PER_KEY = env("RATE_LIMIT_API_CALLS_PER_KEY", default="1200/60")

# GraphQL cost limits (paminga/graphql_limits.py), checked before anything executes: selection depth, aliases and
# an estimated cost per operation (report fields cost more), refused with QUERY_TOO_COMPLEX.
GRAPHQL_MAX_DEPTH = env.int("GRAPHQL_MAX_DEPTH", default=15)
GRAPHQL_MAX_ALIASES = env.int("GRAPHQL_MAX_ALIASES", default=100)
GRAPHQL_MAX_COST = env.int("GRAPHQL_MAX_COST", default=100)
# Report queries (pages and API) run under this PostgreSQL statement timeout, so no report holds a worker for long.
REPORT_STATEMENT_TIMEOUT_MS = env.int("REPORT_STATEMENT_TIMEOUT_MS", default=10_000)

# Celery queues: the sweep of runs lost to a broker outage has a queue of its own, consumed by its own small worker
# (docker-compose's `sweeper`), so that after an outage it re-enqueues lost runs at once instead of waiting behind
# the backlog of action runs in the default queue.
CELERY_TASK_ROUTES = {"automations.tasks.action_runs_sweep_task": {"queue": "sweep"}}
