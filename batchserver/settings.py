"""The one settings module: everything comes from environment variables with sane defaults.

With nothing set, the server runs on SQLite inside a local data folder; ``DATABASE_URL`` points it
at PostgreSQL. Every variable is documented in ``.env.example``.
"""

import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from batchserver.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("BATCHSERVER_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    # A fresh development checkout gets a random key kept in the data folder, so sessions and
    # signatures survive restarts without anyone committing a secret.
    _key_file = DATA_DIR / "secret_key"
    if not _key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "batchserver",
    "models_registry",
    "jobs",
    "plugins",
    "benchmarks",
    "curation",
    "batchserver.operations",  # the console's own pages (label "operations")
    "finetuning",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "batchserver.correlation.CorrelationIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "batchserver.middleware.RejectNulBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "batchserver.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "batchserver.urls"
WSGI_APPLICATION = "batchserver.wsgi.application"

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
                "batchserver.console.context",
            ],
        },
    },
]

DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process read while the worker writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # BEGIN IMMEDIATE: a read-then-write transaction otherwise fails at once ("database is
    # locked", no busy wait) when another process wrote since its read.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["ENGINE"] = "batchserver.db.postgresql"

CACHES = {
    # The django-q2 monitor needs a cache shared between processes: the database cache is.
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "batchserver_cache",
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_ROOT = DATA_DIR / "files"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads larger than this go to a temporary file on disk instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_PERMISSIONS = 0o600

LOGIN_URL = "admin:login"

# --- Production hardening (all on unless DEBUG) ---------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^healthz$", r"^health$"]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("USE_X_FORWARDED_PROTO", default=False)
    else None
)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preloading is a commitment for the whole domain (and its subdomains) that only its operator
# can make, so it stays opt-in and `check --deploy` does not warn about it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["batchserver.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "batchserver.api.errors.openai_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["batchserver.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "batchserver API",
    "DESCRIPTION": (
        "OpenAI-compatible Files, Batches and Models API for self-hosted batch inference on vLLM. "
        "Point the official `openai` SDK at `/v1` with an API key from "
        "`python manage.py create_api_key`. Operators logged in to the admin can browse every "
        "key's objects read-only in the [browsable API](/api/browse/) and run the server from "
        "the [console](/)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and its docs are public; every API call still needs a key.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "http", "scheme": "bearer"},
            # Staff endpoints: the admin's session cookie (log in at /admin/), plus the
            # X-CSRFToken header on unsafe methods.
            "AdminSession": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
        },
    },
    "SECURITY": [{"ApiKey": []}],
    # The bearer scheme above documents ApiKeyAuthentication; without this spectacular would
    # also try (and warn, failing `check --deploy`) to derive a scheme from the class itself.
    "AUTHENTICATION_WHITELIST": [],
}
# Requests each API key may make: "<count>/<sec|min|hour|day>"; "off" disables throttling.
# A found API key is remembered this long by each web process (no query per request); a key
# revoked elsewhere stops working within it. 0: look every key up on every request.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="600/min")
if not re.fullmatch(r"|off|0|\d+/(s|sec|second|m|min|minute|h|hour|d|day)", API_THROTTLE_RATE):
    raise ImproperlyConfigured(f"API_THROTTLE_RATE={API_THROTTLE_RATE!r}: use e.g. 600/min or off")

# --- Batches ---------------------------------------------------------------------------------
BATCH_MAX_FILE_BYTES = env.int("BATCH_MAX_FILE_BYTES", default=200 * 1024 * 1024)
BATCH_MAX_LINES = env.int("BATCH_MAX_LINES", default=50_000)
# Completion windows a client may ask for ("24h" is OpenAI's only one); e.g. "24h,1h,7d".
BATCH_COMPLETION_WINDOWS = env.list("BATCH_COMPLETION_WINDOWS", default=["24h"])
BATCH_ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
# Requests per chunk: the unit of work a worker claims, runs and commits at once.
BATCH_CHUNK_SIZE = env.int("BATCH_CHUNK_SIZE", default=256)
# A task keeps claiming chunks for up to this many seconds, then hands over to a new task.
BATCH_TASK_SLICE_SECONDS = env.float("BATCH_TASK_SLICE_SECONDS", default=30.0)
# How long a claimed chunk stays leased without a heartbeat from its worker; the heartbeat
# (every WORKER_HEARTBEAT_SECONDS) extends the leases of the chunks a live worker holds, so a
# dead worker's chunk is claimable again after at most this long.
BATCH_LEASE_SECONDS = env.int("BATCH_LEASE_SECONDS", default=60)
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=5.0)
# A model that fails to load is retried after this many seconds, doubling each time, plus
# jitter (3 tries in all; delays from tenacity, see batchserver/backoff.py).
BATCH_LOAD_BACKOFF_SECONDS = env.float("BATCH_LOAD_BACKOFF_SECONDS", default=5.0)
BATCH_ALLOW_MIXED_MODELS = env.bool("BATCH_ALLOW_MIXED_MODELS", default=False)
FILE_DEFAULT_EXPIRES_SECONDS = env.int("FILE_DEFAULT_EXPIRES_SECONDS", default=0)  # 0 = never
BATCH_OUTPUT_EXPIRES_SECONDS = env.int("BATCH_OUTPUT_EXPIRES_SECONDS", default=30 * 24 * 3600)

# --- Webhooks --------------------------------------------------------------------------------
# Attempts per message before it becomes a dead letter (listed and replayable).
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
# Seconds to connect, send and wait for an answer, per attempt.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Back-off after failed attempt n: min(initial * exp_base**(n-1) + uniform(0, jitter), max).
# Defaults: ~10 s, 30 s, 1.5 min, 4.5 min, 13.5 min, 40 min, 2 h (about 3 h in all).
WEBHOOK_RETRY_INITIAL_SECONDS = env.float("WEBHOOK_RETRY_INITIAL_SECONDS", default=10.0)
WEBHOOK_RETRY_EXP_BASE = env.float("WEBHOOK_RETRY_EXP_BASE", default=3.0)
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=6 * 3600.0)
WEBHOOK_RETRY_JITTER_SECONDS = env.float("WEBHOOK_RETRY_JITTER_SECONDS", default=5.0)
# Allow webhook URLs on loopback, private, link-local and unique-local addresses (development,
# or receivers inside the operator's own network). Metadata, multicast and reserved addresses
# stay refused.
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)

# --- Plugins (docs/plugins.md) --------------------------------------------------------------
# A folder of local plugins (one .py file or package each), besides the installed packages of
# the ``batchserver.plugins`` entry-point group. With DEBUG, edits to them are reloaded.
PLUGINS_DIR = Path(env.str("BATCHSERVER_PLUGINS_DIR", default=str(DATA_DIR / "plugins")))
# Each process re-reads plugin states (enabled, settings) at most this often: the delay before
# an enable or disable made elsewhere takes effect there. 0: on every call (tests).
PLUGINS_CHECK_SECONDS = env.float("PLUGINS_CHECK_SECONDS", default=2.0)
# Time budget of one hook call (a plugin's manifest may set its own ``time_budget_seconds``).
PLUGINS_CALL_BUDGET_SECONDS = env.float("PLUGINS_CALL_BUDGET_SECONDS", default=2.0)
# Failures in a row (errors or overruns, in one process) after which a plugin is switched off.
PLUGINS_MAX_CONSECUTIVE_FAILURES = env.int("PLUGINS_MAX_CONSECUTIVE_FAILURES", default=5)

# --- Engine ----------------------------------------------------------------------------------
# "vllm" (the real engine, default) or "fake" (deterministic, for orchestration tests only).
BATCHSERVER_ENGINE = env.str("BATCHSERVER_ENGINE", default="vllm")
MODELS_DIR = Path(env.str("BATCHSERVER_MODELS_DIR", default=str(DATA_DIR / "models")))
# The hub models are downloaded from when an operator adds one by id (docs/models.md); empty:
# huggingface_hub's default (HF_ENDPOINT, else https://huggingface.co).
MODELS_HUB_ENDPOINT = env.str("MODELS_HUB_ENDPOINT", default="")

# --- Warm start (issue #16) ------------------------------------------------------------------
# What a freshly spawned worker loads before work arrives: "auto" (the model of the first
# waiting chunk, else the one this host served last, else the newest batch's, else
# WORKER_DEFAULT_MODEL, the built-in model unless set, "" for none), a model name, or "off"
# (every model loads on first use).
WORKER_WARM_MODEL = env.str("WORKER_WARM_MODEL", default="auto")
WORKER_DEFAULT_MODEL = env.str(
    "WORKER_DEFAULT_MODEL", default="HuggingFaceTB/SmolLM2-135M-Instruct"
)

# --- Worker (django-q2) ----------------------------------------------------------------------
# One worker process per GPU: it owns the engine host, so it must not be daemonic (a daemonic
# process may not have children). Tasks are short slices, so ``timeout`` bounds a hung slice
# and ``retry`` (redelivery of an unacknowledged task) is above it, as django-q2 requires.
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME_DEFAULT", default="batchserver"),
    "orm": "default",
    "workers": env.int("Q_WORKERS", default=1),
    "daemonize_workers": False,
    "recycle": 100000,
    "timeout": env.int("Q_TIMEOUT", default=1800),
    "retry": env.int("Q_RETRY", default=1900),
    "max_attempts": 0,
    "save_limit": 100,
    "catch_up": False,
    "poll": env.float("Q_POLL", default=0.2),
    "sync": env.bool("Q_SYNC", default=False),
    "ack_failures": True,
    "label": "Worker tasks",
}
if env.str("REDIS_URL", default=""):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = env.str("REDIS_URL")

# --- File storage (issue #16) ----------------------------------------------------------------
# "local" (default): files under BATCHSERVER_DATA_DIR/files. "s3": any S3-compatible object
# store (AWS S3, MinIO, Ceph, R2…) through django-storages, shared by every host; see
# batchserver/storage.py for the rules (streamed reads, bounded multipart writes, nothing
# published half-written) and docs/deployment.md for the variables.
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
# Downloads: streamed through the web process, or (1) a redirect to a presigned URL of the
# object store, valid this many seconds (object storage only).
FILE_DOWNLOAD_REDIRECT = env.bool("FILE_DOWNLOAD_REDIRECT", default=False)
FILE_DOWNLOAD_URL_SECONDS = env.int("FILE_DOWNLOAD_URL_SECONDS", default=300)
# Multipart uploads: part size (at least 5 MiB, the S3 minimum) and parts in flight at once,
# so memory stays at about their product whatever the file's size; attempts per request.
S3_MULTIPART_CHUNK_BYTES = env.int("S3_MULTIPART_CHUNK_BYTES", default=8 * 1024 * 1024)
S3_MAX_CONCURRENCY = env.int("S3_MAX_CONCURRENCY", default=4)
S3_MAX_ATTEMPTS = env.int("S3_MAX_ATTEMPTS", default=3)
if STORAGE_BACKEND == "s3":
    STORAGES["default"] = {
        "BACKEND": "batchserver.object_storage.ObjectStorage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="") or None,
            "signature_version": env.str("AWS_S3_SIGNATURE_VERSION", default="s3v4"),
            "location": env.str("AWS_LOCATION", default="batchserver"),
            "default_acl": None,  # private objects
            "querystring_auth": True,  # never a public URL
            "querystring_expire": FILE_DOWNLOAD_URL_SECONDS,
            "file_overwrite": True,  # keys hold unique file ids: no existence check per save
        },
    }
elif STORAGE_BACKEND != "local":
    raise ImproperlyConfigured(f"STORAGE_BACKEND={STORAGE_BACKEND!r}: use local or s3")

# --- Operator console (docs/console.md) ------------------------------------------------------
# Each process re-reads the settings changed on /settings at most this often (seconds).
LIVE_SETTINGS_SECONDS = env.float("LIVE_SETTINGS_SECONDS", default=2.0)
# Purge prompts and answers of batches finished more than this many days ago (daily and with
# `manage.py purge_batches`); 0 keeps them forever. Changeable on /settings.
BATCH_RETENTION_DAYS = env.int("BATCH_RETENTION_DAYS", default=0)
# Request rows the purge deletes per transaction (memory and lock time stay bounded by it).
RETENTION_SLICE_ROWS = env.int("RETENTION_SLICE_ROWS", default=5_000)
# Webhook of batches whose own request and key name none ("" = none). Changeable on /settings.
DEFAULT_WEBHOOK_URL = env.str("DEFAULT_WEBHOOK_URL", default="")
# The log store behind /logs: lines kept (the oldest deleted beyond), and how often each process
# writes its buffered lines (0: never by itself, for tests).
LOG_STORE_MAX_LINES = env.int("LOG_STORE_MAX_LINES", default=100_000)
LOG_STORE_FLUSH_SECONDS = env.float("LOG_STORE_FLUSH_SECONDS", default=1.0)

# Structured logs: "json" (one object per line, the default unless DEBUG) or "plain"; every
# record carries the correlation id of its API request or batch (see docs/operations.md).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))

# Curation (docs/curation.md): the most lines an uploaded JSONL dataset may have.
CURATION_UPLOAD_MAX_LINES = env.int("CURATION_UPLOAD_MAX_LINES", default=50_000)
# A dataset's operation (import, export, merge, split, …) that has reported no progress for
# this long is taken to be dead (its worker was killed) and the dataset may be claimed again.
CURATION_TASK_STALE_SECONDS = env.int("CURATION_TASK_STALE_SECONDS", default=600)

# --- Fine-tuning (docs/finetuning.md) --------------------------------------------------------
# Job folders (copied data, the Trainer's checkpoints, the adapter) and merged models.
FINETUNE_DIR = Path(env.str("FINETUNE_DIR", default=str(DATA_DIR / "finetuning")))
FINETUNE_MODELS_DIR = Path(env.str("FINETUNE_MODELS_DIR", default=str(MODELS_DIR / "fine-tuned")))
# A training slice checkpoints and hands the GPU back to the queue after this many seconds.
FINETUNE_SLICE_SECONDS = env.float("FINETUNE_SLICE_SECONDS", default=300.0)
# A checkpoint every N steps (and at each epoch's end): what a killed worker loses at most.
FINETUNE_CHECKPOINT_STEPS = env.int("FINETUNE_CHECKPOINT_STEPS", default=20)
# Longest example, in tokens after the chat template (capped by the model's max_model_len).
FINETUNE_MAX_TOKENS = env.int("FINETUNE_MAX_TOKENS", default=2048)
FINETUNE_MIN_EXAMPLES = env.int("FINETUNE_MIN_EXAMPLES", default=10)
# Learning rate for a multiplier of 1 (LoRA trains well around 1e-4 to 2e-4).
FINETUNE_BASE_LEARNING_RATE = env.float("FINETUNE_BASE_LEARNING_RATE", default=2e-4)
# torch threads of the training process on CPU (0: torch's default, all cores).
FINETUNE_THREADS = env.int("FINETUNE_THREADS", default=0)
# After a job succeeds the worker loads its new model (what clients ask for next), rather than
# the model it had before the training: the first answer of the new model is one load away.
FINETUNE_LOAD_RESULT = env.bool("FINETUNE_LOAD_RESULT", default=True)
