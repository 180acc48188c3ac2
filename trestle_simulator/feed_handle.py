"""In-process control of one feed of a running simulator (`RunningSimulator.feed(name)`):
the same effects as the HTTP control API with `?feed=name`."""

from __future__ import annotations

from typing import Any

from .app import SimulatorApp
from .config import SimulatorConfig
from .served_feed import ServedFeed


class FeedHandle:
    """One feed of a running simulator, with its part of the control API as methods."""

    def __init__(self, app: SimulatorApp, name: str) -> None:
        self._app = app
        self.name = name

    @property
    def _served(self) -> ServedFeed:
        return self._app.feeds[self.name]

    @property
    def config(self) -> SimulatorConfig:
        return self._served.config

    @property
    def client_id(self) -> str:
        """The feed's first client id (the one a single-credential feed has)."""
        return next(iter(self.config.credentials))

    @property
    def client_secret(self) -> str:
        return self.config.credentials[self.client_id]

    def stats(self) -> dict[str, Any]:
        return self._served.stats.snapshot()

    def reset_stats(self) -> None:
        self._served.stats.reset()

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._app.configure(changes, self.name)

    def revoke_tokens(self) -> int:
        return self._served.tokens.revoke_all()

    def expire_tokens(self) -> None:
        self._served.tokens.expire_all()

    def reset_quota(self) -> None:
        self._served.quota.reset()

    def mutate(
        self, resource: str = "Property", count: int = 0, seed: int = 0, delete: int = 0
    ) -> dict[str, list[str]]:
        return self._served.feed.mutate(resource, count=count, seed=seed, delete=delete)

    def upsert(self, resource: str, records: list[dict[str, Any]]) -> list[str]:
        return self._served.feed.upsert(resource, records)

    def delete(self, resource: str, key: str) -> bool:
        return bool(self._served.feed.delete(resource, [key]))

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Every current record of `resource`, in key order."""
        return self._served.feed.records(resource)

    def keys(self, resource: str) -> list[str]:
        """Every current key of `resource`, in key order (cheap: no record generation)."""
        by_key, _ = self._served.feed.data(resource).views()
        return [row.key for row in by_key]
