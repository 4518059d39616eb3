"""Settings, read once from the environment (and `.env` at the repository root when present).

Every variable is listed in `.env.example`. Other modules read `django.conf.settings`, never
`os.environ`.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Lets classes such as ModelAdmin be subscripted for type checking at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BASE_DIR.parent


class _Env(environ.Env):  # type: ignore[misc]
    """django-environ reading a dict of its own: the process environment, then the `.env`
    file for what the environment leaves unset. Reading the file never writes to
    `os.environ`, so nothing but these settings sees its values: not uvicorn (which would
    take a WEB_CONCURRENCY meant for the container as its worker count), not a subprocess."""

    ENVIRON: dict[str, str] = {}


def _env_file() -> Path | None:
    """`ENV_FILE` names the file (empty: none; the test suite sets it so, and sees only the
    environment, as CI does); unset, `.env` at the repository root."""
    chosen = os.environ.get("ENV_FILE")
    if chosen is None:
        return REPO_DIR / ".env"
    return Path(chosen) if chosen.strip() else None


env = _Env()
_file = _env_file()
if _file is not None and _file.is_file():
    _Env.read_env(_file, overwrite=False)
_Env.ENVIRON.update(os.environ)


def setting(name: str, default: str) -> str:
    """A variable's value, with an empty one (`NAME=` in .env) meaning "use the default"."""
    return env.str(name, default="") or default


def int_setting(name: str, default: int) -> int:
    raw = setting(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from exc


def dollars_setting(name: str, default: str) -> Decimal:
    raw = setting(name, default)
    try:
        return Decimal(raw)
    except ArithmeticError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of dollars.") from exc


def bool_setting(name: str, default: bool) -> bool:
    """true/false (yes/no, on/off, 1/0); empty means the default, anything else is refused
    rather than read as false (a typo must not turn a security setting off)."""
    raw = setting(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on", "y"):
        return True
    if raw in ("0", "false", "no", "off", "n"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def list_setting(name: str, default: list[str]) -> list[str]:
    raw = env.str(name, default="")
    return [item.strip() for item in raw.split(",") if item.strip()] if raw.strip() else default


DEBUG: bool = env.bool("DEBUG", default=False) if setting("DEBUG", "") else False

_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdefghij"  # noqa: S105 - used only with DEBUG on
SECRET_KEY: str = setting("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")

ALLOWED_HOSTS: list[str] = list_setting("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CORS_ALLOWED_ORIGINS: list[str] = list_setting("CORS_ALLOWED_ORIGINS", [])
CSRF_TRUSTED_ORIGINS: list[str] = list_setting("CSRF_TRUSTED_ORIGINS", [])
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/api/.*$"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "channels",
    "ninja",
    "core",
    "accounts",
    "chat",
    "ops",
    "llm",
    "web",
]

MIDDLEWARE = [
    # Outermost: every request gets an id and is counted; probes are answered before host
    # validation and the HTTPS redirect (see ops.middleware).
    "ops.middleware.RequestTrackingMiddleware",
    "ops.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "web.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "core.middleware.ApiGuardMiddleware",
    # Korean by default, English when the browser asks for it (Accept-Language, or the
    # language chosen in the web client, kept in a cookie).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ApiEnvelopeMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL: str = setting("DATABASE_URL", "")
DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db_url_config(DATABASE_URL or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock up front so two
    # writers wait for each other instead of failing with "database is locked".
    _db["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    _db.setdefault("CONN_MAX_AGE", int_setting("DB_CONN_MAX_AGE", 60))
    _db["CONN_HEALTH_CHECKS"] = True
DB_IS_SQLITE = _db["ENGINE"] == "django.db.backends.sqlite3"
# SQLite allows one writer at a time, so ORM work stays on Django's single sync thread there;
# PostgreSQL gets a pool of threads (channels' thread-sensitive default serialises all ORM work).
DB_THREAD_SENSITIVE: bool = bool_setting("DB_THREAD_SENSITIVE", DB_IS_SQLITE)
# Threads (so database connections) per process for that pool; keep processes x DB_THREADS
# under PostgreSQL's max_connections (or a pgbouncer's pool), see docs/SCALING.md.
DB_THREADS: int = int_setting("DB_THREADS", 16)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, shared counters -------------------------------------------
REDIS_URL: str = setting("REDIS_URL", "")
CHANNEL_PREFIX: str = setting("CHANNEL_PREFIX", "chat")
# "pubsub" (the default): channels-redis' RedisPubSubChannelLayer. Every event goes straight to
# the processes subscribed to its group, with nothing queued in Redis to overflow, which is what
# keeps many concurrent AI streams whole (BENCHMARKS.md compares the two). Delivery is at most
# once, as with any layer while Redis is unreachable: clients catch up from history after a
# `resync`. "lists": channels-redis' RedisChannelLayer, which queues events per process in Redis
# for up to 60 s and drops them when a process's queue is full.
REDIS_CHANNEL_LAYER: str = setting("REDIS_CHANNEL_LAYER", "pubsub").lower()
if REDIS_CHANNEL_LAYER not in ("lists", "pubsub"):
    raise ImproperlyConfigured(
        f"REDIS_CHANNEL_LAYER must be lists or pubsub, not {REDIS_CHANNEL_LAYER!r}."
    )
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": (
                "core.layers.RedisPubSubChannelLayer"
                if REDIS_CHANNEL_LAYER == "pubsub"
                else "channels_redis.core.RedisChannelLayer"
            ),
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": f"{CHANNEL_PREFIX}:asgi",
                # One channel per server process carries every room's traffic (core.hub), so it
                # needs far more room than the per-socket default of 100.
                "capacity": 5000,
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "core.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# How often each process re-announces its group memberships (they expire in Redis after a day,
# and vanish if Redis restarts).
HUB_REFRESH_SECONDS: int = int_setting("HUB_REFRESH_SECONDS", 60)
# A socket counts (towards its user's cap, and as the user being online) for this long after its
# process last vouched for it; each process vouches every quarter of it. So the users of a
# process that died are shown offline within 1.25x this (SPEC 9.3 asks for 60 s).
PRESENCE_TTL_SECONDS: int = int_setting("PRESENCE_TTL_SECONDS", 40)
if not 4 <= PRESENCE_TTL_SECONDS <= 48:
    raise ImproperlyConfigured(
        "PRESENCE_TTL_SECONDS must be 4 to 48, so that a dead process's users go offline "
        "within 60 s."
    )

# --- Accounts and sessions ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
LOGIN_FAILURE_RATE_PER_ACCOUNT: str = setting("LOGIN_FAILURE_RATE_PER_ACCOUNT", "5/15minute")
LOGIN_FAILURE_RATE_PER_ADDRESS: str = setting("LOGIN_FAILURE_RATE_PER_ADDRESS", "30/15minute")
# Sign-up attempts per client address, refused ones included: each answer says whether a name
# is taken, and each account brings its own per-user limits and budgets.
SIGNUP_RATE_PER_ADDRESS: str = setting("SIGNUP_RATE_PER_ADDRESS", "10/hour")
AI_USERNAME = "AI_Assistant"

# --- Chat -----------------------------------------------------------------------------------
MAX_MESSAGE_CHARS: int = int_setting("MAX_MESSAGE_CHARS", 4000)
CHAT_USER_RATE: str = setting("CHAT_USER_RATE", "30/minute")
MAX_SOCKETS_PER_USER: int = int_setting("MAX_SOCKETS_PER_USER", 20)
WS_MAX_FRAME_BYTES = 64 * 1024
API_MAX_BODY_BYTES = 64 * 1024
HISTORY_PAGE_DEFAULT = 50
HISTORY_PAGE_MAX = 200

# --- LLM --------------------------------------------------------------------------------------
OPENAI_API_KEY: str = setting("OPENAI_API_KEY", "")
OPENAI_BASE_URL: str = setting("OPENAI_BASE_URL", "")
LLM_PROVIDER: str = setting("LLM_PROVIDER", "")
LLM_MODEL: str = setting("LLM_MODEL", "gpt-4o-mini")
# The models a session may choose (SPEC 10.1) besides LLM_MODEL, the default, which always is
# one of them (llm.personas.allowed_models).
LLM_MODELS: list[str] = list_setting("LLM_MODELS", [])
LLM_SYSTEM_PROMPT: str = setting(
    "LLM_SYSTEM_PROMPT",
    (
        "당신은 개발자 채팅방에 참여한 친절하고 전문적인 AI 어시스턴트입니다. "
        "항상 한국어로 답변하며, 코드 관련 질문에는 구체적이고 실용적인 조언을 제공합니다."
    ),
)
LLM_HISTORY_LIMIT: int = int_setting("LLM_HISTORY_LIMIT", 10)
LLM_MAX_OUTPUT_TOKENS: int = int_setting("LLM_MAX_OUTPUT_TOKENS", 1024)
# The history sent with a question is also cut to this many (estimated) tokens, oldest first.
LLM_CONTEXT_TOKENS: int = int_setting("LLM_CONTEXT_TOKENS", 8000)
LLM_TIMEOUT_SECONDS: float = float(setting("LLM_TIMEOUT_SECONDS", "30"))
LLM_MAX_RETRIES: int = int_setting("LLM_MAX_RETRIES", 2)
LLM_USER_RATE: str = setting("LLM_USER_RATE", "10/minute")
# A session's generation lock outlives a dead holder by at most this long (renewed while held).
LLM_LOCK_TTL_SECONDS: int = int_setting("LLM_LOCK_TTL_SECONDS", 30)
LLM_USER_DAILY_TOKEN_BUDGET: int = int_setting("LLM_USER_DAILY_TOKEN_BUDGET", 0)
LLM_MONTHLY_COST_BUDGET_USD: Decimal = dollars_setting("LLM_MONTHLY_COST_BUDGET_USD", "0")
LLM_ROOM_MONTHLY_BUDGET_MAX_USD: Decimal = dollars_setting("LLM_ROOM_MONTHLY_BUDGET_MAX_USD", "100")
if not LLM_ROOM_MONTHLY_BUDGET_MAX_USD.is_finite() or LLM_ROOM_MONTHLY_BUDGET_MAX_USD < 0:
    raise ImproperlyConfigured("LLM_ROOM_MONTHLY_BUDGET_MAX_USD must be 0 or more dollars.")
try:
    LLM_PRICES: dict[str, Any] = json.loads(setting("LLM_PRICES", "{}"))
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"LLM_PRICES is not valid JSON: {exc}") from exc

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", "한국어"), ("en", "English")]
TIME_ZONE = setting("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves static files from the ASGI server itself: compressed, with far-future cache
# headers on hashed names once `collectstatic` has run; straight from the apps in development.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security (production) ------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = bool_setting("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = bool_setting("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = bool_setting("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int_setting("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = bool_setting("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Only allows the domain to be submitted to the browsers' preload list (check --deploy
    # asks for it); submitting is a separate, deliberate step.
    SECURE_HSTS_PRELOAD = bool_setting("SECURE_HSTS_PRELOAD", True)
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    if bool_setting("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SILENCED_SYSTEM_CHECKS = list_setting("SILENCED_SYSTEM_CHECKS", [])

# --- Operations: metrics ---------------------------------------------------------------------
# A bearer token that may read /metrics (signed-in staff may too); empty: staff only.
METRICS_TOKEN: str = setting("METRICS_TOKEN", "")
# With several worker processes: a directory where each keeps its metric values, so that any
# of them can answer a scrape with the sum (prometheus_client's multiprocess mode, which reads
# the variable from the environment itself; deploy/container.sh start sets it up).
PROMETHEUS_MULTIPROC_DIR: str = setting("PROMETHEUS_MULTIPROC_DIR", "").strip()
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR} is not a directory: create it "
        "(empty) before the server starts."
    )
# The one variable these settings export: prometheus_client reads it from the process
# environment when it is imported (after the settings), and takes the mere presence of the
# name, even empty, as "multi-process mode on", writing its files into the working directory.
# So an empty value means off here and there alike.
for _name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
    os.environ.pop(_name, None)
if PROMETHEUS_MULTIPROC_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR

# --- Logging --------------------------------------------------------------------------------
# Everything goes to stdout (what `docker compose logs web` shows), one line per record:
# `plain` text, or `json` objects whose "message" keeps the seed's [AI_...] prefixes.
LOG_LEVEL: str = setting("LOG_LEVEL", "INFO")
LOG_FORMAT: str = setting("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
_log_handler = {
    "class": "logging.StreamHandler",
    "formatter": LOG_FORMAT,
    "stream": "ext://sys.stdout",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "core.logs.PlainFormatter"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "filters": {
        "drop_probes": {"()": "core.logs.DropProbeAccessLines"},
        "client_errors": {"()": "core.logs.ClientProtocolErrorsAsWarnings"},
    },
    "handlers": {
        "console": {**_log_handler, "filters": ["client_errors"]},
        "access": {**_log_handler, "filters": ["drop_probes"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        # Drops of messages for slow clients are worth seeing.
        "channels_redis": {"level": "INFO"},
        # uvicorn sets up its own loggers before Django starts; taking them over gives every
        # line one format, on stdout, without the access lines of health checks and scrapes.
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
