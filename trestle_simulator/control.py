"""The control API under /simulator/: no auth, not counted in quotas or stats.

Tests, benchmarks and the demo use it to look at what was served and to change the feed
or the server's behaviour between phases, over HTTP (another process) or through the
same methods on `RunningSimulator` (in-process).

Every endpoint acts on one feed: the one named by the `feed` query parameter, by default
the only feed (or `default` among several). `GET /simulator/feeds` lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from .config import DEFAULT_FEED, SimulatorConfig
from .feed import Feed
from .quota import QuotaBook
from .responses import control_response
from .stats import Stats
from .tokens import TokenStore


class ControlledFeed(Protocol):
    """One feed's parts the control API reads and changes (a `ServedFeed`)."""

    @property
    def name(self) -> str: ...
    @property
    def config(self) -> SimulatorConfig: ...
    @property
    def feed(self) -> Feed: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def quota(self) -> QuotaBook: ...
    @property
    def stats(self) -> Stats: ...


class Controlled(Protocol):
    """What the control API reaches into: the server app passes itself in (structurally),
    so this module needs nothing of app.py, which builds it."""

    @property
    def feeds(self) -> Mapping[str, ControlledFeed]: ...
    @property
    def primary(self) -> ControlledFeed: ...

    def feed_named(self, name: str | None) -> ControlledFeed:
        """Raises LookupError with `.status` and `.message` for a name it does not serve."""
        ...

    def configure(self, changes: dict[str, Any], feed: str | None = None) -> dict[str, Any]: ...


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ControlApi:
    def __init__(self, app: Controlled) -> None:
        self._app = app

    def handle(self, request: Request, rest: str) -> Response:
        try:
            return control_response(self._route(request, rest.strip("/").split("/")))
        except ControlError as exc:
            return control_response({"error": exc.message}, exc.status)
        except ValueError as exc:
            return control_response({"error": str(exc)}, 400)

    def _route(self, request: Request, parts: list[str]) -> Any:
        method = request.method
        if parts == ["feeds"] and method == "GET":
            return {"feeds": [self._feed_view(served) for served in self._app.feeds.values()]}
        served = self._target(request.args.get("feed"))
        match parts:
            case ["stats"] if method == "GET":
                return served.stats.snapshot()
            case ["stats", "reset"] if method == "POST":
                served.stats.reset()
                return {"reset": True}
            case ["config"] if method == "GET":
                return served.config.runtime_view()
            case ["config"] if method in ("PUT", "PATCH"):
                return self._app.configure(_json_object(request), served.name)
            case ["tokens", "revoke"] if method == "POST":
                return {"revoked": served.tokens.revoke_all()}
            case ["tokens", "expire"] if method == "POST":
                served.tokens.expire_all()
                return {"expired": True}
            case ["quota", "reset"] if method == "POST":
                served.quota.reset()
                return {"reset": True}
            case ["info"] if method == "GET":
                return self._info(served)
            case ["mutate"] if method == "POST":
                body = _json_object(request)
                resource = self._resource(served, str(body.get("resource", "Property")))
                return served.feed.mutate(
                    resource,
                    count=_count(body, "count"),
                    seed=int(body.get("seed", 0)),
                    delete=_count(body, "delete"),
                )
            case ["records", resource] if method == "GET":
                return served.feed.records(self._resource(served, resource))
            case ["records", resource] if method == "POST":
                records = _json(request)
                if not isinstance(records, list):
                    raise ControlError(400, "the body must be a JSON list of records")
                return {"upserted": served.feed.upsert(self._resource(served, resource), records)}
            case ["records", resource, *key] if method == "DELETE" and key:
                deleted = served.feed.delete(self._resource(served, resource), ["/".join(key)])
                if not deleted:
                    raise ControlError(404, f"no {resource} record with key {'/'.join(key)!r}")
                return {"deleted": deleted}
        raise ControlError(404, f"no control endpoint {method} /simulator/{'/'.join(parts)}")

    def _target(self, name: str | None) -> ControlledFeed:
        try:
            return self._app.feed_named(name)
        except LookupError as exc:
            raise ControlError(getattr(exc, "status", 404), str(exc)) from None

    @staticmethod
    def _resource(served: ControlledFeed, name: str) -> str:
        if name not in served.feed.schema.entity_sets:
            raise ControlError(404, f"unknown resource {name!r}")
        return name

    def _feed_view(self, served: ControlledFeed) -> dict[str, Any]:
        """A feed as listed by GET /simulator/feeds: never its secrets."""
        config = served.config
        return {
            "name": served.name,
            "client_ids": list(config.credentials),
            "records": config.records,
            "seed": config.seed,
            "key_seed": config.seed if config.key_seed is None else config.key_seed,
            # The feed a request without ?feed= acts on (none among several unnamed).
            "default": len(self._app.feeds) == 1 or served.name == DEFAULT_FEED,
        }

    @staticmethod
    def _info(served: ControlledFeed) -> dict[str, Any]:
        feed, config = served.feed, served.config
        return {
            "feed": served.name,
            "client_ids": list(config.credentials),
            "records": config.records,
            "seed": config.seed,
            "key_seed": config.seed if config.key_seed is None else config.key_seed,
            "fill": config.fill,
            "metadata_path": str(config.metadata_path) if config.metadata_path else None,
            "entity_sets": list(feed.schema.entity_sets),
            "suppressed_fields": sorted(feed.suppressed),
            "unlicensed": dict(config.unlicensed),
            "counts": {name: len(data) for name, data in feed.resources.items()},
        }


def _json(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"null")
    except json.JSONDecodeError as exc:
        raise ControlError(400, f"body is not JSON: {exc}") from exc


def _json_object(request: Request) -> dict[str, Any]:
    body = _json(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlError(400, f"{name} must be a non-negative integer")
    return value
