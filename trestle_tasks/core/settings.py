"""The one reader of the environment (and of `.env`): every setting, parsed and validated.

Validation names every bad or missing variable at once, so an operator fixes a
configuration in one pass instead of one error per start-up. Secrets are held as `Secret`
and database/Redis URLs are masked wherever settings are shown.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv.parser import parse_stream

from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.masking import Secret, mask_url, url_password

DEFAULT_TOKEN_URL = "https://api.cotality.com/trestle/oidc/connect/token"
DEFAULT_BASE_URL = "https://api.cotality.com/trestle/odata"
DEFAULT_RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")
DEFAULT_DATABASE_URL = "sqlite:///trestle.sqlite3"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_RESOURCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A feed's name becomes part of variable names (FEED_<NAME>_…) and of its default schema
# (feed_<name>), so it is kept to what both allow, in one case only.
FEED_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}\Z")
# Unquoted identifiers that MySQL/MariaDB and PostgreSQL both accept (64 characters at most).
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


# --- parsers: each takes the raw text and returns the value or raises ValueError ----------


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text.rstrip("/")


def _redis_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return text


_DRIVER_HINT = "use mysql+pymysql://, postgresql+psycopg:// or sqlite:///"


def _database_url(text: str) -> str:
    from sqlalchemy.engine import make_url  # parsing only; connects to nothing
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise ValueError("is not a database URL like mysql+pymysql://user:pw@host:3306/db") from exc
    if url.get_backend_name() not in ("mysql", "mariadb", "sqlite", "postgresql"):
        raise ValueError("supported databases are MySQL/MariaDB, PostgreSQL and SQLite")
    # A typo in the driver (mysql+pymsql) or a driver not installed would otherwise surface
    # as SQLAlchemy's plugin text at the first connection; it is a setting to fix.
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database driver {url.get_driver_name()!r}: "
                         f"{_DRIVER_HINT}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        extra = " (pip install 'trestle-tasks[postgres]')" if dialect.driver == \
            "psycopg" else ""
        raise ValueError(f"the {url.get_backend_name()}+{dialect.driver} driver is not "
                         f"installed ({exc.name or exc}){extra}: {_DRIVER_HINT}") from None
    if url.get_backend_name() != "sqlite" and not url.database:
        # MySQL would connect to no database at all (migrate then fails deep inside), and
        # PostgreSQL to one named after the user: the tables would land where nobody looks.
        example = ("postgresql+psycopg://user:pw@host:5432/trestle"
                   if url.get_backend_name() == "postgresql"
                   else "mysql+pymysql://user:pw@host:3306/trestle")
        raise ValueError(f"names no database: end it with /<database>, e.g. {example}")
    return text


def _schema_name(text: str) -> str:
    if not _SCHEMA_NAME.match(text):
        raise ValueError("must be a letter or _ followed by letters, digits or _ (at most 64)")
    return text


def feed_names(text: str) -> tuple[str, ...]:
    """TRESTLE_FEEDS: `north,south`, each name lower case, unique."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError("must name at least one feed")
    bad = [n for n in names if not FEED_NAME.match(n)]
    if bad:
        raise ValueError(f"not feed names: {', '.join(map(repr, bad))} (a lower-case letter, "
                         "then lower-case letters, digits or _, at most 31 in all)")
    if len(set(names)) != len(names):
        raise ValueError("names a feed twice")
    return names


def _resources(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError("must name at least one resource")
    bad = [n for n in names if not _RESOURCE_NAME.match(n)]
    if bad:
        raise ValueError(f"not resource names: {', '.join(map(repr, bad))}")
    if len(set(names)) != len(names):
        raise ValueError("names a resource twice")
    return names


_KIND_NAMES: dict[Callable[[str], Any], str] = {int: "a whole number", float: "a number"}


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _indexed_fields(text: str) -> tuple[str, ...]:
    """`Resource.Field,Resource.Field`: fields stored as typed, indexed columns."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [n for n in names if n.count(".") != 1
           or not _RESOURCE_NAME.match(n.split(".")[0])
           or not _FIELD_NAME.match(n.split(".")[1])]
    if bad:
        raise ValueError(f"not Resource.Field names: {', '.join(map(repr, bad))} "
                         "(e.g. Property.LivingArea)")
    return tuple(dict.fromkeys(names))


def _bounded(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as exc:
            raise ValueError(f"must be {_KIND_NAMES.get(kind, 'a value')} between {low} and "
                             f"{high}") from exc
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _rate_limit(text: str) -> str:
    """Celery's rate_limit form: tasks per second, minute or hour, e.g. `30/m`."""
    value = text.strip()
    if not re.fullmatch(r"\d+(\.\d+)?(/[smh])?", value) or float(value.split("/")[0]) <= 0:
        raise ValueError("must be a positive rate such as 30/m, 2/s or 100/h")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    by_folded = {option.casefold(): option for option in options}

    def parse(text: str) -> str:
        try:
            return by_folded[text.strip().casefold()]
        except KeyError:
            raise ValueError(f"must be one of {', '.join(options)}") from None

    return parse


def _text(text: str) -> str:
    return text


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _boolean(text: str) -> bool:
    folded = text.strip().casefold()
    if folded in _TRUE or folded in _FALSE:
        return folded in _TRUE
    raise ValueError("must be true or false (also 1/0, yes/no, on/off)")


def _defer_indexes(text: str) -> bool | None:
    """`auto` (None: decided by the records' width when a first load is planned), or a
    boolean."""
    if text.strip().casefold() == "auto":
        return None
    try:
        return _boolean(text)
    except ValueError:
        raise ValueError("must be auto, true or false (also 1/0, yes/no, on/off)") from None


_EMAIL = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\Z")


def _email(text: str) -> str:
    if not _EMAIL.match(text.strip()):
        raise ValueError("must be an email address like ops@example.com")
    return text.strip()


def _emails(text: str) -> tuple[str, ...]:
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [a for a in addresses if not _EMAIL.match(a)]
    if not addresses or bad:
        raise ValueError("must be comma-separated email addresses like ops@example.com")
    return addresses


@dataclass(frozen=True)
class SettingSpec:
    """One environment variable: where it goes, how it is read, its default and meaning."""

    env: str
    attribute: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    secret: bool = False


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("TRESTLE_FEEDS", "feed_names", feed_names, (),
                "comma-separated names of the feeds this deployment syncs, each with its "
                "FEED_<NAME>_… variables and its own schema (default: one feed, `default`)"),
    SettingSpec("TRESTLE_CLIENT_ID", "client_id", _text, None,
                "OAuth2 client id (required, except for demo and simulator)"),
    SettingSpec("TRESTLE_CLIENT_SECRET", "client_secret", _text, None,
                "OAuth2 client secret (required, except for demo and simulator)", secret=True),
    SettingSpec("TRESTLE_TOKEN_URL", "token_url", _http_url, DEFAULT_TOKEN_URL,
                "token endpoint"),
    SettingSpec("TRESTLE_ALLOW_HTTP_TOKEN_URL", "allow_http_token_url", _boolean, False,
                "post the client secret to a plain http:// TRESTLE_TOKEN_URL on another "
                "host (a trusted private network, such as the compose simulator's); without "
                "it only https:// or localhost is used"),
    SettingSpec("TRESTLE_BASE_URL", "base_url", _http_url, DEFAULT_BASE_URL,
                "OData service root, the URL that $metadata and Property hang off"),
    SettingSpec("TRESTLE_RESOURCES", "resources", _resources, DEFAULT_RESOURCES,
                "comma-separated resources to sync"),
    SettingSpec("DATABASE_URL", "database_url", _database_url, DEFAULT_DATABASE_URL,
                "SQLAlchemy URL of the target database"),
    SettingSpec("DATABASE_SCHEMA", "database_schema", _schema_name, None,
                "schema (PostgreSQL) or database (MySQL/MariaDB, same server) the tables go "
                "in, created by migrate (default: the URL's own; feed_<name> for a feed "
                "other than `default`)"),
    SettingSpec("REDIS_URL", "redis_url", _redis_url, DEFAULT_REDIS_URL,
                "Redis for locks, the quota limiter and the token cache"),
    SettingSpec("CELERY_BROKER_URL", "celery_broker_url", _text, None,
                "Celery broker (defaults to REDIS_URL)"),
    SettingSpec("CELERY_RESULT_BACKEND", "celery_result_backend", _text, None,
                "Celery result backend (defaults to REDIS_URL)"),
    SettingSpec("TRESTLE_HTTP_TIMEOUT", "http_timeout_s", _bounded(float, 1, 600), 60.0,
                "seconds to wait for one HTTP response"),
    SettingSpec("TRESTLE_MAX_RESPONSE_MB", "max_response_mb", _bounded(int, 1, 100_000), 256,
                "MB one response body may have, decompressed: a body past it (a gzip bomb, "
                "a runaway page) is dropped and retried like a body cut short"),
    SettingSpec("TRESTLE_RETRY_BUDGET", "retry_budget_s", _bounded(float, 0, 86400), 300.0,
                "seconds one request may spend retrying 429s, 5xx and broken connections"),
    SettingSpec("TRESTLE_PAGE_SIZE", "page_size", _bounded(int, 1, 1000), 1000,
                "records asked for per page ($top); Trestle's ceiling is 1000"),
    SettingSpec("TRESTLE_QUOTA_PER_MINUTE", "quota_per_minute", _bounded(int, 3, 1_000_000),
                None, "requests a minute this credential may use at most, below what "
                "Trestle's quota headers allow (another application shares the credential); "
                "default: what the headers say"),
    SettingSpec("TRESTLE_QUOTA_PER_HOUR", "quota_per_hour", _bounded(int, 180, 100_000_000),
                None, "requests an hour this credential may use at most, spread evenly over "
                "the hour (a sixtieth a minute); default: what the headers say"),
    SettingSpec("SYNC_WINDOW_SIZE", "window_size", _bounded(int, 100, 10_000_000), 20_000,
                "target records per sync window (one Celery task each)"),
    SettingSpec("SYNC_LOCK_TTL", "lock_ttl_s", _bounded(float, 30, 86400), 60.0,
                "the run lock's lease: seconds it outlives the last live process of its "
                "run (renewed every third of it while the run works), so a killed worker "
                "frees its resource this long after it died"),
    SettingSpec("SYNC_SETTLE_SECONDS", "settle_s", _bounded(float, 0, 3600), 0.0,
                "records changed in the last N seconds before a run is planned wait for the "
                "next run: protects against a Trestle clock behind this machine's, or late "
                "commits"),
    SettingSpec("SYNC_RETRY_DELAY", "retry_delay_s", _bounded(float, 0.1, 3600), 30.0,
                "seconds before a failed window is retried; doubles per attempt, and a "
                "run retried as a whole waits four times as long"),
    SettingSpec("SYNC_REPLICATION_MIN_RECORDS", "replication_min_records",
                _bounded(int, 0, 1_000_000_000), 100_000,
                "a window expected to hold at least this many records is walked through "
                "Trestle's replication endpoint instead of keyset pages (0: never)"),
    SettingSpec("SYNC_MAX_CONCURRENT_WINDOWS", "max_concurrent_windows", _bounded(int, 1, 1000),
                8, "most windows run at once across the cluster; halved under pressure "
                   "(429s, a slow database, a low quota), regained window by window"),
    SettingSpec("SYNC_WINDOW_LANES", "window_lanes", _bounded(int, 1, 8), 3,
                "stretches of one window walked at once, one request each in flight: a "
                "window of n pages waits for about n / lanes round trips instead of n, for "
                "about one more request (1: walk each window in one stream)"),
    SettingSpec("SYNC_WORKER_RATE_LIMIT", "worker_rate_limit", _rate_limit, None,
                "Celery rate_limit on window tasks, per worker process (e.g. 30/m): a "
                "ceiling on top of the cluster-wide quota limiter"),
    SettingSpec("SYNC_WINDOW_STALE_SECONDS", "window_stale_s", _bounded(float, 10, 3600), 40.0,
                "a running window whose heartbeat (every quarter of this) is older is taken "
                "for dead and handed to another worker by the watchdog on beat; a window "
                "sent but not started after 2.25 times this, for lost, and sent again"),
    SettingSpec("CELERY_WORKER_MAX_MEMORY_MB", "worker_max_memory_mb",
                _bounded(int, 0, 1_000_000), 1024,
                "a worker process that grew past this many MB is replaced after its task "
                "(Celery's worker_max_memory_per_child; 0: never)"),
    SettingSpec("SYNC_INTERVAL_MINUTES", "sync_interval_minutes", _bounded(float, 0.1, 1440),
                5.0, "minutes between incremental syncs on the beat schedule"),
    SettingSpec("SYNC_POLL_QUOTA_SHARE", "poll_quota_share", _bounded(float, 0, 0.5), 0.05,
                "share of the credential's hour quota that polling every resource for "
                "changes may spend (the fast path; 0: no polling, runs on the beat "
                "interval only)"),
    SettingSpec("SYNC_POLL_MIN_SECONDS", "poll_min_s", _bounded(float, 1, 3600), 2.0,
                "the shortest interval between two polls of one resource, whatever the "
                "budget allows"),
    SettingSpec("SYNC_POLL_MAX_SECONDS", "poll_max_s", _bounded(float, 1, 86400), 300.0,
                "the longest interval between two polls of a resource that does not change"),
    SettingSpec("DB_BATCH_SIZE", "batch_size", _bounded(int, 1, 50_000), 1000,
                "records per upsert statement and transaction"),
    SettingSpec("STORE_INDEXED_FIELDS", "indexed_fields", _indexed_fields, (),
                "fields stored as typed, indexed columns on top of the defaults, e.g. "
                "Property.LivingArea,Property.Latitude (applied by migrate and by syncs)"),
    SettingSpec("STORE_DEFER_INDEXES", "defer_indexes", _defer_indexes, None,
                "a first load into an empty table builds the table's secondary indexes "
                "once at its end instead of row by row (queries on those columns are slow "
                "until that run ends): auto (the default) for resources of wide records "
                "(at least 400 declared fields, as Trestle's Property), true for every "
                "resource, false for none"),
    SettingSpec("LOCK_DIR", "lock_dir", _text, None,
                "folder for the alert cooldown files of `sync --local` and `demo` (run locks "
                "live in the database; default: temp dir)"),
    SettingSpec("COST_PER_REQUEST", "cost_per_request", _bounded(float, 0, 1000), None,
                "price of one API request, for the cost estimate in `status` (default: none)"),
    SettingSpec("COST_PER_GB", "cost_per_gb", _bounded(float, 0, 100_000), None,
                "price of one GB of responses as sent (compressed), for the cost estimate in "
                "`status` (default: none)"),
    SettingSpec("LOG_DIR", "log_dir", _text, None,
                "folder for rotating application.log, errors.log and api.log (default: none)"),
    SettingSpec("LOG_LEVEL", "log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO",
                "log level"),
    SettingSpec("LOG_FORMAT", "log_format", _choice("auto", "json", "console"), "auto",
                "json lines, readable console lines, or auto (console on a terminal)"),
    # Alerts: email when ALERT_EMAIL_TO and ALERT_SMTP_HOST are set, webhooks when their URL
    # is; webhook URLs are secrets (their path is usually the token).
    SettingSpec("ALERT_EMAIL_TO", "alert_email_to", _emails, None,
                "comma-separated addresses alerts are mailed to (default: no email)"),
    SettingSpec("ALERT_EMAIL_FROM", "alert_email_from", _email, None,
                "sender of alert mail (default: trestle-etl@<this host>)"),
    SettingSpec("ALERT_SMTP_HOST", "alert_smtp_host", _text, None,
                "SMTP server for alert mail (default: no email)"),
    SettingSpec("ALERT_SMTP_PORT", "alert_smtp_port", _bounded(int, 1, 65535), 587,
                "SMTP port"),
    SettingSpec("ALERT_SMTP_USER", "alert_smtp_user", _text, None,
                "SMTP login (default: no login)"),
    SettingSpec("ALERT_SMTP_PASSWORD", "alert_smtp_password", _text, None,
                "SMTP password", secret=True),
    SettingSpec("ALERT_SMTP_STARTTLS", "alert_smtp_starttls", _boolean, True,
                "upgrade the SMTP connection with STARTTLS before logging in"),
    SettingSpec("ALERT_WEBHOOK_URL", "alert_webhook_url", _http_url, None,
                "URL alerts are POSTed to as JSON (default: none)", secret=True),
    SettingSpec("ALERT_SLACK_WEBHOOK_URL", "alert_slack_webhook_url", _http_url, None,
                "Slack-compatible incoming webhook for alerts (default: none)", secret=True),
    SettingSpec("ALERT_COOLDOWN_MINUTES", "alert_cooldown_minutes", _bounded(float, 0, 10080),
                60.0, "minutes a repeat of the same alert is suppressed (0: never)"),
    SettingSpec("ALERT_QUOTA_THRESHOLD", "alert_quota_threshold", _bounded(float, 0, 1), 0.9,
                "alert when this fraction of the hour quota is used"),
    SettingSpec("ALERT_FRESHNESS_SECONDS", "alert_freshness_s", _bounded(float, 1, 86400),
                120.0, "alert when a resource's p95 change-to-commit time over the last hour "
                "passes this many seconds"),
    SettingSpec("ALERT_REJECT_THRESHOLD", "alert_reject_threshold", _bounded(float, 0, 1), 0.01,
                "alert when a run rejects more than this fraction of the records it fetched"),
    SettingSpec("ALERT_DRIFT_THRESHOLD", "alert_drift_threshold",
                _bounded(int, 0, 1_000_000_000), 100,
                "alert when a reconcile finds more than this many records differing from the "
                "feed (missing + stale + gone; 0: any)"),
    SettingSpec("ALERT_STALE_AFTER_MINUTES", "alert_stale_after_minutes",
                _bounded(float, 1, 525_600), 60.0,
                "alert when a resource has not synced successfully for this long"),
    SettingSpec("ALERT_LOCK_MAX_MINUTES", "alert_lock_max_minutes", _bounded(float, 1, 525_600),
                360.0, "alert when one run has held a resource's run lock this long"),
)

BY_ENV: dict[str, SettingSpec] = {spec.env: spec for spec in SPECS}

# What may differ between the feeds of one deployment (FEED_<NAME>_<VARIABLE>, feeds.py):
# what belongs to one feed's credential, its server, its runs or its tables, all read from
# that feed's Settings. The rest is the cluster's (one Redis, one Celery, one set of
# workers, logs and alert channels): a per-feed value for it could not be honoured.
FEED_SCOPED: frozenset[str] = frozenset({
    "TRESTLE_CLIENT_ID", "TRESTLE_CLIENT_SECRET", "TRESTLE_TOKEN_URL", "TRESTLE_BASE_URL",
    "TRESTLE_RESOURCES", "TRESTLE_HTTP_TIMEOUT", "TRESTLE_RETRY_BUDGET", "TRESTLE_PAGE_SIZE",
    "TRESTLE_QUOTA_PER_MINUTE", "TRESTLE_QUOTA_PER_HOUR",
    "SYNC_WINDOW_SIZE", "SYNC_WINDOW_LANES", "SYNC_INTERVAL_MINUTES",
    "SYNC_MAX_CONCURRENT_WINDOWS", "SYNC_RETRY_DELAY", "SYNC_REPLICATION_MIN_RECORDS",
    "SYNC_SETTLE_SECONDS", "STORE_INDEXED_FIELDS", "STORE_DEFER_INDEXES", "DATABASE_URL",
    "DATABASE_SCHEMA",
    "DB_BATCH_SIZE", "SYNC_POLL_QUOTA_SHARE", "SYNC_POLL_MIN_SECONDS", "SYNC_POLL_MAX_SECONDS",
})

_CREDENTIALS = ("client_id", "client_secret")


@dataclass(frozen=True)
class Settings:
    client_id: str | None
    client_secret: Secret | None
    token_url: str
    base_url: str
    resources: tuple[str, ...]
    database_url: str
    database_schema: str | None
    feed_names: tuple[str, ...]
    redis_url: str
    celery_broker_url: str | None
    celery_result_backend: str | None
    http_timeout_s: float
    max_response_mb: int
    retry_budget_s: float
    page_size: int
    quota_per_minute: int | None
    quota_per_hour: int | None
    window_size: int
    lock_ttl_s: float
    sync_interval_minutes: float
    poll_quota_share: float
    poll_min_s: float
    poll_max_s: float
    retry_delay_s: float
    settle_s: float
    max_concurrent_windows: int
    window_lanes: int
    replication_min_records: int
    worker_rate_limit: str | None
    window_stale_s: float
    worker_max_memory_mb: int
    batch_size: int
    indexed_fields: tuple[str, ...]
    defer_indexes: bool | None  # None: auto, by the records' width
    lock_dir: str | None
    cost_per_request: float | None
    cost_per_gb: float | None
    log_dir: str | None
    log_level: str
    log_format: str
    alert_email_to: tuple[str, ...] | None
    alert_email_from: str | None
    alert_smtp_host: str | None
    alert_smtp_port: int
    alert_smtp_user: str | None
    alert_smtp_password: Secret | None
    alert_smtp_starttls: bool
    alert_webhook_url: Secret | None
    alert_slack_webhook_url: Secret | None
    alert_cooldown_minutes: float
    alert_quota_threshold: float
    alert_freshness_s: float
    alert_reject_threshold: float
    alert_drift_threshold: int
    alert_stale_after_minutes: float
    alert_lock_max_minutes: float
    # Which feed these settings are (feeds.load_feeds sets it); not read from a variable.
    feed: str = "default"
    allow_http_token_url: bool = False

    @property
    def promoted_fields(self) -> dict[str, tuple[str, ...]]:
        """STORE_INDEXED_FIELDS by resource: {"Property": ("LivingArea", ...)}."""
        by_resource: dict[str, tuple[str, ...]] = {}
        for name in self.indexed_fields:
            resource, field_name = name.split(".")
            by_resource[resource] = (*by_resource.get(resource, ()), field_name)
        return by_resource

    @property
    def quota_cap_per_minute(self) -> float | None:
        """The operator's cap on the credential's pace, a minute's worth (None: the quota
        headers alone decide)."""
        caps = [cap for cap in (self.quota_per_minute,
                                self.quota_per_hour / 60 if self.quota_per_hour else None)
                if cap is not None]
        return min(caps) if caps else None

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.celery_result_backend or self.redis_url

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for log redaction."""
        values = [s.reveal() for s in (self.client_secret, self.alert_smtp_password,
                                       self.alert_webhook_url, self.alert_slack_webhook_url)
                  if s]
        for url in (self.database_url, self.redis_url, self.broker_url, self.result_backend):
            password = url_password(url)
            if password:
                values.append(password)
        return values

    def masked(self) -> dict[str, str]:
        """Every setting by variable name, safe to print."""
        shown: dict[str, str] = {}
        for spec in SPECS:
            value = getattr(self, spec.attribute)
            if value is None:
                shown[spec.env] = "(not set)"
            elif spec.secret:
                shown[spec.env] = str(Secret("x"))
            elif isinstance(value, tuple):
                shown[spec.env] = ",".join(value)
            elif "URL" in spec.env or "BACKEND" in spec.env:
                shown[spec.env] = mask_url(str(value))
            else:
                shown[spec.env] = str(value)
        return shown

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.masked().items())
        return f"Settings(feed={self.feed!r}, {inner})"


def read_env_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """Variables from a .env file, and a problem for each line that could not be parsed."""
    values: dict[str, str] = {}
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return values, [f"{path}: is not UTF-8 text"]
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            problems.append(f"{path}: line {line} could not be parsed")
        elif binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values, problems


def read_source(environ: Mapping[str, str] | None, env_file: str | Path | None
                ) -> tuple[dict[str, str], list[str]]:
    """`.env` overlaid with the environment (the environment wins), and the problems of
    the file's lines. A variable named like ours that is none of ours is warned about."""
    source: dict[str, str] = {}
    problems: list[str] = []
    if env_file is not None and Path(env_file).is_file():
        file_values, file_problems = read_env_file(Path(env_file))
        source.update(file_values)
        problems.extend(file_problems)
    source.update(os.environ if environ is None else environ)
    _warn_once(unknown_variables(source))
    return source, problems


# Prefixes of our settings: a name with one that is not a setting is most likely a typo
# (TRESTLE_PAGESIZE), which would otherwise leave the default in force without a word.
# FEED_<NAME>_… variables are feeds.py's to check (an unknown one is an error there).
WATCHED_PREFIXES = ("TRESTLE_", "SYNC_", "STORE_", "DB_", "ALERT_")
# Read by the test suite, not the application (how many records its store tests load).
_READ_ELSEWHERE = frozenset({"STORE_SIM_RECORDS", "STORE_WIDE_RECORDS"})


def unknown_variables(source: Mapping[str, str]) -> list[str]:
    """One line per variable with a watched prefix that is not a setting, with the
    closest setting's name."""
    import difflib

    known = sorted(BY_ENV)
    lines = []
    for name in sorted(source):
        if not name.startswith(WATCHED_PREFIXES) or name in BY_ENV or name in _READ_ELSEWHERE:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        lines.append(f"{name} is not a setting"
                     + (f" (did you mean {close[0]}?)" if close else "") + "; it is ignored")
    return lines


_warned: set[str] = set()


def _warn_once(lines: list[str]) -> None:
    """Each line on stderr once per process (settings are read more than once). Logging
    is not set up yet when settings are read: its settings are among them."""
    import sys

    for line in lines:
        if line not in _warned:
            _warned.add(line)
            print(f"trestle-etl: warning: {line}", file=sys.stderr)


# One problem with one variable: its name and what follows it ("='x': must be …" or
# ": is required"), so a caller can name the variable as the operator wrote it
# (FEED_NORTH_… for a feed's own value, see feeds.py).
Problem = tuple[str, str]


def parse_values(source: Mapping[str, str], *, require_credentials: bool
                 ) -> tuple[dict[str, Any], list[Problem]]:
    """Every setting parsed from `source`, and a problem per bad or missing variable."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for spec in SPECS:
        raw = source.get(spec.env)
        if raw is None or not raw.strip():
            values[spec.attribute] = spec.default
            continue
        try:
            parsed = spec.parse(raw.strip())
        except ValueError as exc:
            shown = "(hidden)" if spec.secret else repr(mask_url(raw.strip()))
            problems.append((spec.env, f"={shown}: {exc}"))
            continue
        values[spec.attribute] = Secret(parsed) if spec.secret else parsed

    if require_credentials:
        for spec in SPECS:
            if spec.attribute in _CREDENTIALS and values.get(spec.attribute) is None:
                problems.append((spec.env, ": is required"))

    problems.extend(_indexed_outside_resources(values))
    schema, url = values.get("database_schema"), values.get("database_url")
    if schema is not None and url is not None and url.startswith("sqlite"):
        # SQLite has schemas only as ATTACHed files, which the store does not attach.
        problems.append(("DATABASE_SCHEMA", f"={schema!r}: SQLite has no schemas; give "
                         "the tables a database file of their own in DATABASE_URL instead"))
    return values, problems


def _indexed_outside_resources(values: Mapping[str, Any]) -> list[Problem]:
    """STORE_INDEXED_FIELDS naming a resource TRESTLE_RESOURCES lacks: a typo (`Propety.`)
    that would otherwise be skipped, and demote what the correct name had promoted."""
    import difflib

    indexed, resources = values.get("indexed_fields"), values.get("resources")
    if not indexed or resources is None:
        return []
    stray = []
    for name in indexed:
        resource, field_name = name.split(".")
        if resource not in resources:
            close = difflib.get_close_matches(resource, resources, n=1, cutoff=0.6)
            stray.append(f"{name} (did you mean {close[0]}.{field_name}?)" if close
                         else name)
    if not stray:
        return []
    return [("STORE_INDEXED_FIELDS", f"={','.join(indexed)!r}: names a resource not in "
             f"TRESTLE_RESOURCES ({','.join(resources)}): {'; '.join(stray)}")]


def build_settings(values: Mapping[str, Any], feed: str = "default") -> Settings:
    """Settings from values parse_values returned without problems."""
    return Settings(**{f.name: values[f.name] for f in fields(Settings) if f.name != "feed"},
                    feed=feed)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    require_credentials: bool = True,
) -> Settings:
    """Read settings from `.env` then the environment (the environment wins).

    Raises ConfigurationError naming every problem at once. With several feeds
    (TRESTLE_FEEDS), feeds.load_feeds gives each feed's settings; these are the variables
    as set, the cluster-wide ones included.
    """
    source, problems = read_source(environ, env_file)
    values, found = parse_values(source, require_credentials=require_credentials)
    problems.extend(env + rest for env, rest in found)
    if problems:
        raise ConfigurationError(
            "invalid settings: " + "; ".join(problems), problems=problems
        )
    return build_settings(values)
