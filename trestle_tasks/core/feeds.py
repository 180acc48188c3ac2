"""Several named feeds in one deployment: each feed's Settings, read from one environment.

    TRESTLE_FEEDS=north,south
    FEED_NORTH_TRESTLE_CLIENT_ID=…   FEED_NORTH_TRESTLE_CLIENT_SECRET=…
    FEED_SOUTH_TRESTLE_CLIENT_ID=…   FEED_SOUTH_TRESTLE_CLIENT_SECRET=…
    FEED_SOUTH_SYNC_INTERVAL_MINUTES=15

A feed's settings are the variables of the whole deployment overlaid with its own
`FEED_<NAME>_<VARIABLE>`; only the variables in settings.FEED_SCOPED may be given per feed.
Without TRESTLE_FEEDS there is one feed, `default`, read exactly as load_settings reads it.

A listing key is unique only inside its feed, so each feed keeps its tables and its
bookkeeping (sync log, windows, watermarks, rejects, run locks) in a schema of its own (a
PostgreSQL schema, or a MySQL/MariaDB database on the same server): DATABASE_SCHEMA,
`feed_<name>` unless set, except for the feed called `default`, which keeps the URL's own
(so a single-feed deployment can add feeds beside its existing tables). SQLite has no
schemas: a feed on SQLite other than `default` names a database file of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.masking import mask_url
from trestle_tasks.core.settings import (
    BY_ENV,
    FEED_SCOPED,
    Problem,
    Settings,
    build_settings,
    feed_names,
    parse_values,
    read_source,
)

DEFAULT_FEED = "default"
FEED_PREFIX = "FEED_"


def feed_variable(feed: str, env: str) -> str:
    """The name of `env` given for one feed: FEED_NORTH_TRESTLE_CLIENT_ID."""
    return f"{FEED_PREFIX}{feed.upper()}_{env}"


def default_schema(feed: str) -> str | None:
    """Where a feed's tables go when DATABASE_SCHEMA is not set (server databases)."""
    return None if feed == DEFAULT_FEED else f"feed_{feed}"


def load_feeds(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    require_credentials: bool = True,
) -> dict[str, Settings]:
    """Each feed's settings by name, in TRESTLE_FEEDS order (`{"default": …}` without it).

    Raises ConfigurationError naming every problem at once: bad values (under the name the
    operator wrote: FEED_NORTH_… for a feed's own), FEED_… variables for feeds not listed
    or for cluster-wide settings, two feeds on one credential or in one schema.
    """
    source, problems = read_source(environ, env_file)
    raw_names = source.get("TRESTLE_FEEDS", "").strip()
    if not raw_names:
        return _single_feed(source, problems, require_credentials)
    try:
        names = feed_names(raw_names)
    except ValueError as exc:
        problems.append(f"TRESTLE_FEEDS={raw_names!r}: {exc}")
        raise _error(problems) from None

    overrides, found = _feed_overrides(source, names)
    problems.extend(found)
    shared = {k: v for k, v in source.items() if not k.startswith(FEED_PREFIX)}
    # Values parsed so far for every feed, the failing ones too: two feeds on one
    # credential are reported with a bad page size elsewhere, all at once.
    parsed: dict[str, dict[str, Any]] = {}
    for name in names:
        own = overrides[name]
        values, value_problems = parse_values({**shared, **own},
                                              require_credentials=require_credentials)
        problems.extend(_named(name, own, problem) for problem in value_problems)
        url = values.get("database_url")
        if url and name != DEFAULT_FEED and "database_schema" in values \
                and values["database_schema"] is None:
            if not url.startswith("sqlite"):
                values["database_schema"] = default_schema(name)
            elif "DATABASE_URL" not in own:
                problems.append(
                    f"{feed_variable(name, 'DATABASE_URL')}: is required: feed {name} is on "
                    "SQLite, which has no schemas to keep feeds apart; give it a database "
                    f"file of its own (e.g. sqlite:///{name}.sqlite3) or use MySQL/MariaDB "
                    "or PostgreSQL")
                del values["database_schema"]  # said once: no clash reported on top
        parsed[name] = values
    problems.extend(_clashes(parsed))
    if problems:
        # A global variable read by every feed is named once, not once per feed.
        raise _error(list(dict.fromkeys(problems)))
    return {name: build_settings(values, feed=name) for name, values in parsed.items()}


def _single_feed(source: dict[str, str], problems: list[str],
                 require_credentials: bool) -> dict[str, Settings]:
    """Today's configuration: load_settings' reading, plus one check. A FEED_<X>_<SETTING>
    without TRESTLE_FEEDS means feeds were meant but not listed: it would be ignored and
    the default feed synced alone, so it is an error. Other FEED_… variables belong to
    someone else and are left alone, as before."""
    values, found = parse_values(source, require_credentials=require_credentials)
    problems.extend(env + rest for env, rest in found)
    for key in sorted(source):
        rest = key[len(FEED_PREFIX):]
        if key.startswith(FEED_PREFIX) and any(rest.endswith(f"_{env}") for env in BY_ENV):
            problems.append(f"{key}: a setting of one feed, but TRESTLE_FEEDS is not set; "
                            "list the feeds there (e.g. TRESTLE_FEEDS=north,south)")
    if problems:
        raise _error(problems)
    return {DEFAULT_FEED: build_settings(values)}


def _feed_overrides(source: Mapping[str, str], names: tuple[str, ...]
                    ) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Each feed's own variables (without their prefix), and a problem for each FEED_…
    variable that is not one: a typo must not silently leave a feed on the defaults."""
    overrides: dict[str, dict[str, str]] = {name: {} for name in names}
    problems: list[str] = []
    for key in sorted(source):
        if not key.startswith(FEED_PREFIX):
            continue
        # Names may hold `_`, so FEED_A_B_… may be feed a's B_… or feed a_b's …: the one
        # whose rest is a setting wins (no two settings make that ambiguous today).
        matches = [(name, key[len(feed_variable(name, "")):]) for name in names
                   if key.startswith(feed_variable(name, ""))]
        known = [(name, env) for name, env in matches if env in BY_ENV]
        if not matches:
            problems.append(f"{key}: names no feed of TRESTLE_FEEDS ({', '.join(names)}); "
                            f"{FEED_PREFIX}<NAME>_<VARIABLE> with NAME in upper case")
        elif not known:
            name, env = max(matches, key=lambda match: len(match[0]))
            problems.append(f"{key}: {env!r} is not a setting (feed {name})")
        elif len(known) > 1:
            problems.append(f"{key}: could belong to feeds {', '.join(n for n, _ in known)}; "
                            "rename one of them")
        else:
            [(name, env)] = known
            if env in FEED_SCOPED:
                overrides[name][env] = source[key]
            else:
                problems.append(f"{key}: {env} is cluster-wide (one for every feed): set "
                                f"{env} itself, not per feed")
    return overrides, problems


def _named(feed: str, own: Mapping[str, str], problem: Problem) -> str:
    """A problem of one feed's values, under the variable the operator should fix."""
    env, rest = problem
    if env in own:
        return feed_variable(feed, env) + rest
    if rest == ": is required":
        return (f"{feed_variable(feed, env)}: is required: each feed has its own credential "
                f"(feed {feed})")
    return env + rest  # the deployment's own variable, read by this feed


def _clashes(feeds: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Two feeds on one credential, or with their tables in one place (from the values
    each feed parsed; a value that failed to parse is left out of the comparison)."""
    problems: list[str] = []
    by_credential: dict[tuple[str, str], str] = {}
    by_namespace: dict[tuple[Any, ...], str] = {}
    for name, values in feeds.items():
        token_url, client_id = values.get("token_url"), values.get("client_id")
        if token_url is not None and client_id is not None:
            credential = (token_url, client_id)
            if credential in by_credential:
                problems.append(
                    f"feeds {by_credential[credential]} and {name} use the same credential "
                    "(TRESTLE_TOKEN_URL and TRESTLE_CLIENT_ID): the quota is per credential, "
                    "so each feed needs its own")
            by_credential.setdefault(credential, name)
        if "database_url" not in values or "database_schema" not in values:
            continue
        url, schema = values["database_url"], values["database_schema"]
        namespace = _namespace(url, schema)
        if namespace is not None:
            if namespace in by_namespace:
                where = mask_url(url) + (f" schema {schema}" if schema else "")
                fix = feed_variable(name, "DATABASE_URL")
                if namespace[0] != "sqlite":
                    fix = f"{feed_variable(name, 'DATABASE_SCHEMA')} or {fix}"
                problems.append(
                    f"feeds {by_namespace[namespace]} and {name} would keep their tables in "
                    f"the same place ({where}), mixing their records: give one its own "
                    f"{fix}")
            by_namespace.setdefault(namespace, name)
    return problems


def _namespace(database_url: str, database_schema: str | None) -> tuple[Any, ...] | None:
    """Where a feed's tables end up, so two feeds resolving to one place are caught however
    they spell it (a MySQL schema is a database: `…/trestle` and schema `trestle` meet).
    Names are compared case-blind: one letter's case apart is too close to be meant."""
    from sqlalchemy.engine import make_url  # parsing only; connects to nothing

    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ""
        if not path or path == ":memory:" or path.startswith("file:"):
            return None  # every engine gets a database of its own
        return ("sqlite", os.path.abspath(path))
    host = (url.host or "localhost").lower().strip("[]")
    if host == "localhost" or host == "::1" or host.startswith("127."):
        # One server however this machine is named (the schema's owner row, etl_owner,
        # catches the spellings no URL tells: a DNS alias, another deployment).
        host = "loopback"
    if backend == "postgresql":
        schema = database_schema or "public"
        return ("postgresql", host, url.port or 5432, url.database,
                schema.casefold())
    schema = database_schema or url.database or ""
    return ("mysql", host, url.port or 3306, schema.casefold())


def _error(problems: list[str]) -> ConfigurationError:
    return ConfigurationError("invalid settings: " + "; ".join(problems), problems=problems)
