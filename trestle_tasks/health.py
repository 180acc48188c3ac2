"""Reachability checks behind `trestle-etl check-config`: each says ok or what failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trestle_tasks import factory
from trestle_tasks.logs import redact
from trestle_tasks.masking import mask_url
from trestle_tasks.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except Exception as error:  # a check reports any failure; it never raises
        reason = " ".join(str(error).split()) or type(error).__name__
        return Check(name, False, redact(f"{type(error).__name__}: {reason}")[:300])


def run_checks(settings: Settings) -> Iterator[Check]:
    has_credentials = settings.client_id is not None and settings.client_secret is not None

    def token() -> str:
        factory.token_provider(settings, shared=False).get_token()
        return f"token issued by {mask_url(settings.token_url)}"

    def odata() -> str:
        client = factory.trestle_client(settings, shared=False)
        document = client.get_metadata()
        if "EntityType" not in document:
            raise ValueError("$metadata did not declare any EntityType")
        return f"$metadata read from {mask_url(settings.base_url)} ({len(document):,} bytes)"

    if has_credentials:
        yield _run("token endpoint", token)
        yield _run("OData root", odata)
    else:
        missing = "TRESTLE_CLIENT_ID and TRESTLE_CLIENT_SECRET are not set"
        yield Check("token endpoint", False, missing)
        yield Check("OData root", False, missing)
    yield _run("database", lambda: _check_database(settings.database_url))
    yield _run("redis", lambda: _check_redis(settings))


def _check_database(url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Connecting would create the file; check that it could be created instead.
        database = parsed.database or ""
        if database in ("", ":memory:"):
            return "in-memory SQLite"
        folder = Path(database).resolve().parent
        if not folder.is_dir():
            raise FileNotFoundError(f"folder {folder} does not exist")
        return f"SQLite file {Path(database).resolve()}"
    engine = create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT VERSION()")).scalar()
    finally:
        engine.dispose()
    return f"{mask_url(url)} ({version})"


def _check_redis(settings: Settings) -> str:
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    finally:
        client.close()
    return f"{mask_url(settings.redis_url)} (Redis {version})"
