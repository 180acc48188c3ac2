"""Reachability checks behind `trestle-etl check-config`: each says ok or what failed.

The token and OData checks use the local runtime the command built from `check_settings`
(one attempt, a short timeout): a check asks for itself, not for the cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from trestle_tasks.cli.preflight import broker_answers
from trestle_tasks.core.errors import RetriesExhaustedError
from trestle_tasks.core.logs import redact
from trestle_tasks.core.masking import mask_url
from trestle_tasks.core.settings import Settings
from trestle_tasks.worker.runtime import LocalRuntime


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except Exception as failure:  # a check reports any failure; it never raises
        error: BaseException = failure
        if isinstance(failure, RetriesExhaustedError) and failure.__cause__ is not None:
            error = failure.__cause__  # checks make one attempt: "gave up" says nothing
        reason = " ".join(str(error).split()) or type(error).__name__
        if "timeout" in reason.lower() or "timed out" in reason.lower():
            reason += f" (timed out: no answer within {CHECK_TIMEOUT_S:g} s)"
        return Check(name, False, redact(f"{type(error).__name__}: {reason}")[:300])


# A check is a question, not a sync: it must not sit out TRESTLE_RETRY_BUDGET (minutes)
# against an endpoint that does not answer. One attempt, this long at most.
CHECK_TIMEOUT_S = 10.0

Starting = Callable[[str, str], None]


def check_settings(settings: Settings) -> Settings:
    """The settings to build the checks' runtime from: one attempt, CHECK_TIMEOUT_S at most."""
    return replace(settings, http_timeout_s=min(settings.http_timeout_s, CHECK_TIMEOUT_S),
                   retry_budget_s=0.0)


def run_checks(runtime: LocalRuntime, *, on_start: Starting | None = None) -> Iterator[Check]:
    """Each check in turn; `on_start(name, what it is doing)` before each one.

    `runtime` is built from `check_settings(...)`, so no check outwaits an endpoint that
    does not answer."""
    settings = runtime.settings
    started = on_start or (lambda _name, _doing: None)
    has_credentials = settings.client_id is not None and settings.client_secret is not None
    metadata: list[str] = []  # the document, once the OData check has read it

    def token() -> str:
        runtime.token_provider().get_token()
        return f"token issued by {mask_url(settings.token_url)}"

    def odata() -> str:
        document = runtime.trestle_client().get_metadata()
        if "EntityType" not in document:
            raise ValueError("$metadata did not declare any EntityType")
        metadata.append(document)
        return f"$metadata read from {mask_url(settings.base_url)} ({len(document):,} bytes)"

    if not has_credentials:
        missing = "TRESTLE_CLIENT_ID and TRESTLE_CLIENT_SECRET are not set"
        yield Check("token endpoint", False, missing)
        yield Check("OData root", False, missing)
    else:
        started("token endpoint", f"asking {mask_url(settings.token_url)} for a token")
        got_token = _run("token endpoint", token)
        yield got_token
        if got_token.ok:
            started("OData root", f"reading {mask_url(settings.base_url)}/$metadata")
            yield _run("OData root", odata)
        else:
            yield Check("OData root", False, "not tried: no token")
    if metadata:
        yield _run("resources", lambda: _check_resources(settings.resources, metadata[0]))
    started("database", "connecting")
    yield _run("database", lambda: _check_database(settings.database_url))
    started("redis", f"pinging {mask_url(settings.redis_url)}")
    yield _run("redis", lambda: _check_redis(settings))
    started("celery broker", f"connecting to {mask_url(settings.broker_url)}")
    yield _run("celery broker", lambda: broker_answers(settings.broker_url,
                                                         settings.result_backend))


def _check_resources(wanted: tuple[str, ...], document: str) -> str:
    """TRESTLE_RESOURCES against the entity sets `$metadata` declares: an unknown name
    would otherwise surface only when its turn comes in a sync."""
    from trestle_tasks.edm.metadata import parse_metadata

    declared = list(parse_metadata(document).resources)
    unknown = [name for name in wanted if name not in declared]
    if unknown:
        raise ValueError(f"TRESTLE_RESOURCES names {', '.join(unknown)}, which $metadata does "
                         f"not declare (it declares {', '.join(declared)})")
    return f"{', '.join(wanted)} declared in $metadata"


def _check_database(url: str) -> str:
    from trestle_tasks.store.probe import describe_database

    return describe_database(url, timeout_s=CHECK_TIMEOUT_S)


def _check_redis(settings: Settings) -> str:
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return f"{mask_url(settings.redis_url)} (Redis {version})"
