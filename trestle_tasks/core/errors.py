"""One error hierarchy for the whole pipeline, split once into retriable and fatal.

Retriable errors are worth trying again later (the same request, or the same task):
throttling, server faults, broken connections, bodies cut short. Fatal errors will fail
the same way every time (bad credentials, a 400, bad settings) and must surface at once.

Every exception here survives pickling with its details intact, because Celery ships
exceptions between processes; secrets are never put into a message in the first place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _rebuild(cls: type[TrestleTasksError], message: str, details: dict[str, Any]) -> Any:
    return cls(message, **details)


class TrestleTasksError(Exception):
    """Base of every error the pipeline raises on purpose."""

    retriable: bool = False
    # The same request again will not help, but the walk started over may (a window from
    # its first page): an expired replication link. See is_retriable(from_the_start=True).
    restartable: bool = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.details))


class RetriableError(TrestleTasksError):
    """Worth trying again after a pause."""

    retriable = True


class FatalError(TrestleTasksError):
    """Will fail the same way again: report it, do not retry."""


# --- configuration -----------------------------------------------------------------


class ConfigurationError(FatalError):
    """Settings are missing or invalid; `problems` names every one of them."""

    @property
    def problems(self) -> list[str]:
        return list(self.details.get("problems", []))


# --- HTTP and OData ------------------------------------------------------------------


class HTTPStatusError(TrestleTasksError):
    """An HTTP answer with an error status; `status` and a sanitized `url` are kept."""

    @property
    def status(self) -> int | None:
        return self.details.get("status")

    @property
    def url(self) -> str | None:
        return self.details.get("url")


class TransientServerError(HTTPStatusError, RetriableError):
    """5xx: the server failed this time."""


class RateLimitedError(HTTPStatusError, RetriableError):
    """429: over quota. `retry_after` holds the server's advice in seconds, if it gave any."""

    @property
    def retry_after(self) -> float | None:
        return self.details.get("retry_after")


class ConnectionFailedError(RetriableError):
    """The connection broke, timed out or was reset before a whole answer arrived."""


class InvalidResponseError(RetriableError):
    """The body was not the JSON it should be (cut short, an HTML error page): retriable."""


class RetriesExhaustedError(RetriableError):
    """The retry budget ran out; the last error is chained as __cause__.

    Still retriable at a coarser level: the task can be tried again later.
    """


class NoProgressError(RetriesExhaustedError):
    """Trestle gave no successful answer for a whole retry budget (TRESTLE_RETRY_BUDGET):
    the service, or the way to it, is gone. The message names the host and what was tried.

    Still retriable (a later run may find it back), but a window or run that made no
    progress is not retried at once: that would only spend another budget before anyone
    is told (sync/run_retry.py)."""


class ODataRequestError(HTTPStatusError, FatalError):
    """A 4xx other than 401/429: the request itself is wrong and is never retried."""


class UnexpectedResponseError(FatalError):
    """Valid JSON that is not an OData collection: a silent empty page would lose data."""


class UnlicensedResourceError(ODataRequestError):
    """The subscription may not read this resource (400/403/404 on the entity set)."""


class TopCeilingError(ODataRequestError):
    """A 400 saying the largest `$top` this kind of query takes (`ceiling`): a walk asks
    again with pages that size (a server that lowers it when photos come inline)."""

    @property
    def ceiling(self) -> int:
        return int(self.details.get("ceiling", 0))


class ReplicationLinkExpiredError(ODataRequestError):
    """A replication nextLink was idle too long; the walk must start again."""

    restartable = True


class BadCredentialsError(FatalError):
    """The token endpoint rejected the client id or secret."""


class UnsafeLinkError(FatalError):
    """A nextLink pointed somewhere other than the configured service: never send it the token."""


# --- metadata and store ----------------------------------------------------------------


class MetadataError(FatalError):
    """`$metadata` is not EDMX we can build tables from (unreadable, keyless, inconsistent)."""


class SchemaMismatchError(FatalError):
    """The database's tables do not match what the store expects (run `trestle-etl migrate`)."""


class StoreUnavailableError(RetriableError):
    """The database could not be reached, or a batch kept failing on connection loss,
    deadlocks or lock timeouts after its retries; the batch was rolled back whole."""


class StoreError(FatalError):
    """The database refused a statement for a reason retrying will not fix."""


# --- coordination ------------------------------------------------------------------------


class LockLostError(RetriableError):
    """A run's lock lapsed while it worked (a pause or a database outage longer than its
    lease) and may belong to another run now: the run stops before changing what that run
    may be changing. The next attempt takes the lock again."""


# --- alerts ------------------------------------------------------------------------------


class AlertDeliveryError(RetriableError):
    """An alert channel (SMTP server, webhook) refused or did not answer. Names the channel
    and host only: webhook URLs carry tokens and SMTP logins carry passwords."""


# --- the one retriable/fatal decision ------------------------------------------------------

# Transport failures of the services around us, by the exception's module and name, so this
# module imports none of them (redis, kombu and the drivers stay optional at import time).
_TRANSIENT_FOREIGN = {
    ("redis.exceptions", "ConnectionError"), ("redis.exceptions", "TimeoutError"),
    ("redis.exceptions", "BusyLoadingError"), ("redis.exceptions", "TryAgainError"),
    ("kombu.exceptions", "OperationalError"), ("amqp.exceptions", "ConnectionError"),
    ("amqp.exceptions", "RecoverableConnectionError"),
    ("requests.exceptions", "ConnectionError"), ("requests.exceptions", "Timeout"),
}


# Errors of the layers above, classified by those layers themselves so that this module
# imports none of them: the store registers its reading of database errors on import
# (store/dberrors.py registers how). A classifier answers True or False, or None for "not mine".
Classifier = Callable[[BaseException], bool | None]
_classifiers: list[Classifier] = []


def register_classifier(classify: Classifier) -> None:
    """Let `is_retriable` ask `classify` about errors it does not know (idempotent)."""
    if classify not in _classifiers:
        _classifiers.append(classify)


def is_retriable(error: BaseException, *, from_the_start: bool = False) -> bool:
    """Whether trying the same thing again later may succeed; the only place that decides.
    `from_the_start`: the thing is a whole walk started over (a window redelivered), which
    also cures what only a fresh start does (`restartable`: an expired replication link).

    Our own errors say so themselves; a database error is classified by the driver's code
    (store/dberrors.py registers that reading); a dropped connection to Redis, the broker
    or an HTTP server is transient. Anything else (TypeError, KeyError, …) is a bug:
    retrying it would fail the same way, only later and after hiding its traceback, so it
    is fatal.
    """
    if isinstance(error, TrestleTasksError):
        return error.retriable or (from_the_start and error.restartable)
    if isinstance(error, ConnectionError | TimeoutError):  # the builtin OSError family
        return True
    for cls in type(error).__mro__:
        if (cls.__module__, cls.__name__) in _TRANSIENT_FOREIGN:
            return True
    for classify in _classifiers:
        verdict = classify(error)
        if verdict is not None:
            return verdict
    return False


class WindowSupersededError(BaseException):
    """This delivery of a window no longer owns it: its heartbeat lapsed and the watchdog
    handed the window to another delivery. A BaseException, so that no `except Exception`
    on the way records a failure over the new owner's row; the task drops it quietly."""
