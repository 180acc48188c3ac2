"""Settings of one simulator instance.

Everything has a default so `SimulatorConfig()` is a working Trestle look-alike. A few
fields may change while the server runs (`RUNTIME_FIELDS`), so one server can be
reconfigured between the phases of a test or benchmark instead of being restarted.

One server may serve several feeds (`feeds`), as Trestle serves every MLS a brokerage
subscribes to from one host: the credential a token was issued to picks the feed. Without
`feeds`, the top-level fields describe the only feed, called `default`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_FEED = "default"
# Feed names travel in URLs (?feed=) and on the command line (NAME:CLIENT_ID:SECRET).
FEED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
INHERIT: Literal["inherit"] = "inherit"  # a FeedConfig quota taken from SimulatorConfig

MEDIA_MAX_LIMIT = 99

DEFAULT_CLIENT_ID = "trestle-simulator"
DEFAULT_CLIENT_SECRET = "simulator-secret"

# Fields of the project's default metadata that answer 400 `suppressed (provider Level)`
# in $filter/$orderby and are null on every row, as some MLSs do for owner and showing
# details. They are declared in metadata, so $select on them works and returns nulls.
DEFAULT_SUPPRESSED_FIELDS: frozenset[str] = frozenset(
    {"OwnerName", "ShowingContactPhone", "PrivateRemarks"}
)

FAULT_FIELDS = (
    "rate_5xx",
    "rate_429",
    "rate_connection_reset",
    "rate_truncated_body",
    "rate_html_error",
    "rate_empty_expand",
)

# What `PUT /simulator/config` and `RunningSimulator.configure()` may change while serving.
# Data shape (records, seed, metadata, fill) and the listening address are fixed at start.
RUNTIME_FIELDS = frozenset(
    {
        *FAULT_FIELDS,
        "fault_seed",
        "minute_quota",
        "hour_quota",
        "quota_headers_as_float",
        "retry_after_on_429",
        "latency_ms_per_request",
        "latency_ms_per_record",
        "extra_latency_ms",
        "replication_link_ttl_s",
        "token_ttl_s",
        "standard_query_row_cap",
        "expand_top_ceiling",
        "max_query_string_chars",
    }
)
# Runtime fields that belong to the web server in front of every feed, not to one feed:
# changing one through any feed changes it for all.
SERVER_WIDE_FIELDS = frozenset({"max_query_string_chars"})


@dataclass
class FeedConfig:
    """One MLS feed of a multi-feed simulator; what it does not set comes from the
    `SimulatorConfig` it belongs to.

    Attributes:
        credentials: the client_id -> client_secret pairs whose tokens see this feed (at
            least one; a client id belongs to one feed only).
        records: number of Property records; None = `SimulatorConfig.records`.
        seed: the feed's data; None = `SimulatorConfig.seed` plus the feed's position
            (0 for the first), so undeclared seeds still give each feed its own data.
        key_seed: the feed's keys; None = `SimulatorConfig.key_seed` (itself defaulting to
            `SimulatorConfig.seed`), so by default every feed serves the same keys for the
            same ordinals (ListingKey overlaps across feeds, with different values). Give
            feeds distinct key seeds for disjoint keys.
        metadata_path: None = `SimulatorConfig.metadata_path`.
        minute_quota, hour_quota: "inherit" = the `SimulatorConfig` value; None = unlimited.
        latency_ms_per_request: None = the `SimulatorConfig` value.
    """

    credentials: dict[str, str]
    records: int | None = None
    seed: int | None = None
    key_seed: int | None = None
    metadata_path: str | Path | None = None
    minute_quota: int | Literal["inherit"] | None = INHERIT
    hour_quota: int | Literal["inherit"] | None = INHERIT
    latency_ms_per_request: float | None = None


@dataclass
class SimulatorConfig:
    """How the simulated Trestle service looks and misbehaves.

    Attributes:
        host: interface to listen on.
        port: TCP port; 0 picks a free one (see `RunningSimulator.base_url`).
        records: number of Property records; Member (records/10, min 5), Office
            (records/100, min 2), Media (0 to media_max_per_listing a listing) and
            OpenHouse (~20% of listings) are derived from it.
        seed: the same seed gives byte-identical records, whatever the request order.
        metadata_path: None serves the project's own default metadata; a path to an EDMX
            file serves that document verbatim and generates data following its types.
        credentials: accepted OAuth2 client credentials, client_id -> client_secret.
        token_ttl_s: lifetime of an access token (`expires_in`), 8 hours like Trestle.
        minute_quota: requests per credential per wall-clock minute; None = unlimited
            (quota headers are still sent, with a nominal very large limit).
        hour_quota: requests per credential per wall-clock hour; None = unlimited.
        quota_headers_as_float: send quota header values as `8520.0` instead of `8520`,
            as some Trestle accounts do.
        retry_after_on_429: None sends no Retry-After header on a 429 (Trestle's
            behaviour is unknown); a number sends `Retry-After: <seconds>`.
        latency_ms_per_request: sleep before answering every data request.
        latency_ms_per_record: additional sleep per row returned (top-level rows).
        extra_latency_ms: additional sleep for chosen kinds of request, kind -> ms, on top
            of the two above: "$metadata"; "census" (a collection request with `$top`
            over 1,000, which only key-index selects may ask); or an entity set's name
            (every other request of that set: pages, by key, `$count`, replication).
            For tests that must catch a client in the middle of one phase (planning's
            census, a photo-set fetch) without slowing down everything else.
        replication_link_ttl_s: a replication nextLink unused for this long expires
            (Trestle: 5 minutes).
        rate_5xx: probability of a 500/502/503/504 with a JSON or text body.
        rate_429: probability of a 429 although quota remains (a burst limiter).
        rate_connection_reset: probability that the socket is closed without a response.
        rate_truncated_body: probability of a 200 whose JSON is cut in half (the
            Content-Length matches the bytes sent, so the client sees invalid JSON).
        rate_html_error: probability of a 502/503 text/html page from a "proxy".
        rate_empty_expand: probability, per expanded listing with PhotosCount > 0, that
            `$expand=Media` yields `[]` with HTTP 200 (seen under quota pressure).
        fault_seed: seed of the fault RNG (faults are drawn in request order).
        unlicensed: entity sets the subscription may not read, set name -> HTTP status.
        suppressed_fields: Property fields (declared in metadata) that answer 400
            `suppressed (provider Level)` in $filter/$orderby and are null on every row.
            None = a small realistic set for the default metadata, none for a loaded file.
        fill: "realistic" (sparse, plausible values) or "max" (every string at its
            declared MaxLength, multi-selects with every member, numbers at the edge of
            their precision: for wide-row storage tests).
        standard_query_row_cap: a standard query asking past this many rows ($skip +
            $top) fails with 500 `Error getting data!`; replication has no cap.
        expand_top_ceiling: the largest `$top` of a query with `$expand` (over it: 400
            `maximum limit/$top value for this kind of query is N`). Whether Trestle
            lowers it below 1,000 when photos come inline is **unknown** (MLS Grid does);
            set it lower to play a server that does.
        max_query_string_chars: a data request whose query string (as sent, encoded) is
            longer is refused with 414 and a text/html page, before authentication or
            quota. Trestle's limit is unknown; its HTML error pages suggest IIS, whose
            default is 2,048 characters.
        media_max_per_listing: the most Media rows a listing has (0-99; about 0.43 of it on
            average over the ~88% of listings with photos: 20 gives ~8.5 a listing, 64
            ~25).
        compact_index: answer Property and Media from the plan's ordinals instead of an
            index row per record (a few bytes a row instead of ~300: what a feed of millions
            of listings and tens of millions of photos needs). Pages are the same; the
            first write through the control API to such a resource builds its regular
            index, so keep writes to Property when Media is in the tens of millions.
        key_seed: the seed keys are drawn from; None = `seed` (what a single feed has
            always served). Feeds sharing a key seed serve overlapping keys.
        feeds: named feeds served side by side, each with its own credentials, data,
            quota, stats, faults and replication links (see `FeedConfig`). Empty = one
            feed called "default" described by the top-level fields; given, exactly these
            feeds are served and `credentials` must be left alone.
    """

    host: str = "127.0.0.1"
    port: int = 0
    records: int = 1000
    seed: int = 1
    metadata_path: str | Path | None = None
    credentials: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    )
    token_ttl_s: int = 28800
    minute_quota: int | None = 280
    hour_quota: int | None = 8400
    quota_headers_as_float: bool = False
    retry_after_on_429: int | None = None
    latency_ms_per_request: float = 0.0
    # Generate every Property record before serving and keep them: pages then cost only their
    # encoding. For benchmarks, where the simulator's CPU stands in for Trestle's own
    # servers and must not be counted against the client (about 15 KB per wide record).
    prerender: bool = False
    latency_ms_per_record: float = 0.0
    extra_latency_ms: dict[str, float] = field(default_factory=dict)
    replication_link_ttl_s: float = 300.0
    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_connection_reset: float = 0.0
    rate_truncated_body: float = 0.0
    rate_html_error: float = 0.0
    rate_empty_expand: float = 0.0
    fault_seed: int = 0
    unlicensed: dict[str, int] = field(
        default_factory=lambda: {"Building": 403, "HistoryTransactional": 400, "Enumeration": 404}
    )
    suppressed_fields: frozenset[str] | None = None
    fill: Literal["realistic", "max"] = "realistic"
    standard_query_row_cap: int = 1_000_000
    expand_top_ceiling: int = 1000
    max_query_string_chars: int = 2048
    key_seed: int | None = None
    media_max_per_listing: int = 20
    compact_index: bool = False
    feeds: dict[str, FeedConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject settings that would make the simulator lie about what it does."""
        if self.records < 0:
            raise ValueError("records must be >= 0")
        if self.fill not in ("realistic", "max"):
            raise ValueError("fill must be 'realistic' or 'max'")
        if not 0 <= self.media_max_per_listing <= MEDIA_MAX_LIMIT:
            # Media keys end in a two-digit sequence number: key order is sequence order.
            raise ValueError(f"media_max_per_listing must be between 0 and {MEDIA_MAX_LIMIT}")
        if self.expand_top_ceiling < 1:
            raise ValueError("expand_top_ceiling must be >= 1")
        for name in FAULT_FIELDS:
            rate = getattr(self, name)
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if (
            sum(float(getattr(self, name)) for name in FAULT_FIELDS if name != "rate_empty_expand")
            > 1.0
        ):
            raise ValueError("the per-request fault rates must add up to at most 1")
        for name in ("minute_quota", "hour_quota"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")
        for kind, ms in self.extra_latency_ms.items():
            if not isinstance(kind, str) or not kind:
                raise ValueError("extra_latency_ms: a kind of request must be a non-empty string")
            if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
                raise ValueError(f"extra_latency_ms[{kind!r}] must be a number >= 0")
        if self.max_query_string_chars < 1:
            raise ValueError("max_query_string_chars must be positive")
        if self.token_ttl_s <= 0 or self.replication_link_ttl_s <= 0:
            raise ValueError("TTLs must be positive")
        for status in self.unlicensed.values():
            if not 400 <= int(status) <= 499:
                raise ValueError("unlicensed statuses must be 4xx")
        _validate_credentials("credentials", self.credentials)
        if self.feeds:
            self._validate_feeds()

    def _validate_feeds(self) -> None:
        if self.credentials != {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}:
            raise ValueError(
                "with feeds, give each feed its own credentials instead of `credentials`"
            )
        owner: dict[str, str] = {}
        for name, feed in self.feeds.items():
            if not isinstance(name, str) or not FEED_NAME.fullmatch(name):
                raise ValueError(
                    f"feed name {name!r}: use letters, digits, '_', '.' or '-' (at most 64, "
                    "starting with a letter or digit)"
                )
            if not isinstance(feed, FeedConfig):
                raise ValueError(f"feed {name!r} must be a FeedConfig")
            _validate_credentials(f"feed {name!r}", feed.credentials)
            for client_id in feed.credentials:
                if client_id in owner:
                    raise ValueError(
                        f"client id {client_id!r} is declared by feeds {owner[client_id]!r} "
                        f"and {name!r}; a credential sees exactly one feed"
                    )
                owner[client_id] = name
            if feed.records is not None and feed.records < 0:
                raise ValueError(f"feed {name!r}: records must be >= 0")
            if feed.latency_ms_per_request is not None and feed.latency_ms_per_request < 0:
                raise ValueError(f"feed {name!r}: latency_ms_per_request must be >= 0")
            for quota in ("minute_quota", "hour_quota"):
                value = getattr(feed, quota)
                if value != INHERIT and value is not None and value < 0:
                    raise ValueError(f"feed {name!r}: {quota} must be >= 0, None or 'inherit'")

    def feed_settings(self) -> dict[str, SimulatorConfig]:
        """Each served feed's complete settings, by name, in declaration order.

        A feed's settings are this config with the feed's own fields filled in (and no
        `feeds`), so everything that serves one feed reads one `SimulatorConfig`.
        """
        if not self.feeds:
            return {DEFAULT_FEED: self}
        shared_key_seed = self.seed if self.key_seed is None else self.key_seed
        settings: dict[str, SimulatorConfig] = {}
        for position, (name, feed) in enumerate(self.feeds.items()):
            settings[name] = dataclasses.replace(
                self,
                feeds={},
                credentials=dict(feed.credentials),
                records=self.records if feed.records is None else feed.records,
                seed=self.seed + position if feed.seed is None else feed.seed,
                key_seed=shared_key_seed if feed.key_seed is None else feed.key_seed,
                metadata_path=(
                    self.metadata_path if feed.metadata_path is None else feed.metadata_path
                ),
                minute_quota=(
                    self.minute_quota if feed.minute_quota == INHERIT else feed.minute_quota
                ),
                hour_quota=self.hour_quota if feed.hour_quota == INHERIT else feed.hour_quota,
                latency_ms_per_request=(
                    self.latency_ms_per_request
                    if feed.latency_ms_per_request is None
                    else feed.latency_ms_per_request
                ),
            )
        return settings

    def effective_suppressed_fields(self) -> frozenset[str]:
        """The suppressed set after applying the metadata-dependent default."""
        if self.suppressed_fields is not None:
            return frozenset(self.suppressed_fields)
        return DEFAULT_SUPPRESSED_FIELDS if self.metadata_path is None else frozenset()

    def with_changes(self, changes: dict[str, Any]) -> SimulatorConfig:
        """A validated copy with runtime-adjustable fields changed (for PUT /simulator/config)."""
        unknown = set(changes) - RUNTIME_FIELDS
        if unknown:
            raise ValueError(f"not adjustable at run time: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def runtime_view(self) -> dict[str, Any]:
        """The adjustable fields and their current values, as JSON-ready data."""
        return {name: getattr(self, name) for name in sorted(RUNTIME_FIELDS)}


def _validate_credentials(where: str, credentials: dict[str, str]) -> None:
    if not credentials:
        raise ValueError(f"{where}: at least one client_id -> client_secret is needed")
    for client_id, secret in credentials.items():
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"{where}: a client id must be a non-empty string")
        if not isinstance(secret, str) or not secret:
            # Not echoing anything but the client id: the value may be a real secret.
            raise ValueError(f"{where}: the secret of client id {client_id!r} is empty")
