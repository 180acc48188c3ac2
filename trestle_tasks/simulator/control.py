"""The control API under /simulator/: no auth, not counted in quotas or stats.

Tests, benchmarks and the demo use it to look at what was served and to change the feed
or the server's behaviour between phases, over HTTP (another process) or through the
same methods on `RunningSimulator` (in-process).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from .config import SimulatorConfig
from .feed import Feed
from .quota import QuotaBook
from .responses import control_response
from .stats import Stats
from .tokens import TokenStore


class Controlled(Protocol):
    """What the control API reaches into: the server app passes itself in (structurally),
    so this module needs nothing of app.py, which builds it."""

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

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]: ...


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
        app, method = self._app, request.method
        match parts:
            case ["stats"] if method == "GET":
                return app.stats.snapshot()
            case ["stats", "reset"] if method == "POST":
                app.stats.reset()
                return {"reset": True}
            case ["config"] if method == "GET":
                return app.config.runtime_view()
            case ["config"] if method in ("PUT", "PATCH"):
                return app.configure(_json_object(request))
            case ["tokens", "revoke"] if method == "POST":
                return {"revoked": app.tokens.revoke_all()}
            case ["tokens", "expire"] if method == "POST":
                app.tokens.expire_all()
                return {"expired": True}
            case ["quota", "reset"] if method == "POST":
                app.quota.reset()
                return {"reset": True}
            case ["info"] if method == "GET":
                return self._info()
            case ["mutate"] if method == "POST":
                body = _json_object(request)
                resource = self._resource(str(body.get("resource", "Property")))
                return app.feed.mutate(
                    resource,
                    count=_count(body, "count"),
                    seed=int(body.get("seed", 0)),
                    delete=_count(body, "delete"),
                )
            case ["records", resource] if method == "GET":
                return app.feed.records(self._resource(resource))
            case ["records", resource] if method == "POST":
                records = _json(request)
                if not isinstance(records, list):
                    raise ControlError(400, "the body must be a JSON list of records")
                return {"upserted": app.feed.upsert(self._resource(resource), records)}
            case ["records", resource, *key] if method == "DELETE" and key:
                deleted = app.feed.delete(self._resource(resource), ["/".join(key)])
                if not deleted:
                    raise ControlError(404, f"no {resource} record with key {'/'.join(key)!r}")
                return {"deleted": deleted}
        raise ControlError(404, f"no control endpoint {method} /simulator/{'/'.join(parts)}")

    def _resource(self, name: str) -> str:
        if name not in self._app.feed.schema.entity_sets:
            raise ControlError(404, f"unknown resource {name!r}")
        return name

    def _info(self) -> dict[str, Any]:
        feed, config = self._app.feed, self._app.config
        return {
            "records": config.records,
            "seed": config.seed,
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
