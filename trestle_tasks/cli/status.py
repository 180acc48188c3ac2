"""What `trestle-etl status` shows: recent runs, run locks, watermarks and their lag,
freshness and polling, quota use.

It works with runtimes (runtime.py): the cluster's, whose quota limiter in Redis is the one
every worker paces by, and with --feed a local one for its own requests. So it sits with
the commands, above monitoring/."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from trestle_tasks.core.masking import mask_url
from trestle_tasks.monitoring.cost import usage
from trestle_tasks.monitoring.drift import latest_reconciles
from trestle_tasks.monitoring.freshness import FreshnessRecorder, clock_warning
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import OPEN_STATUSES, POLLS_KIND, SyncRun
from trestle_tasks.store.sync_log_reports import run_progress
from trestle_tasks.sync.poll_state import PollStateStore
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

log = logging.getLogger(__name__)


def feed_backlog(runtime: LocalRuntime, resources: list[str], marks: dict[str, Any]
                 ) -> dict[str, Any]:
    """Records the feed holds past each watermark: one key-only `$count` per resource.

    This is the lag behind the feed itself (what the next run will fetch), as opposed to
    the watermark's age; it costs a request per resource, so `status` asks only when told.
    """
    from trestle_tasks.core.timestamps import ODataTimestamp
    from trestle_tasks.store.records import layout_of
    from trestle_tasks.trestle.pager import range_filter
    from trestle_tasks.trestle.query import ODataQuery

    client = runtime.trestle_client()
    store = runtime.store
    upper = ODataTimestamp.now().ticks
    backlog: dict[str, Any] = {}
    for resource in resources:
        mark = marks.get(resource)
        try:
            key_field = layout_of(store.engine, resource, store.schema).key_field.name
            query = ODataQuery(resource, select=(key_field,), filter=range_filter(
                mark.ticks if mark is not None else None, upper))
            backlog[resource] = client.get_count(query)
        except Exception as error:  # one resource's problem must not hide the others
            backlog[resource] = {"error": f"{type(error).__name__}: {error}"[:200]}
    return backlog


def collect_status(cluster: ClusterRuntime, *, limit: int = 10,
                   feed: LocalRuntime | None = None) -> dict[str, Any]:
    """Runs, watermarks, reconciles, the cluster's quota and usage; with `feed` (a local
    runtime: its few `$count` requests are paced in this process), also what the feed
    holds past each watermark."""
    settings = cluster.settings
    store = cluster.store
    now = datetime.now(UTC)
    report: dict[str, Any] = {"database": mask_url(settings.database_url),
                              "schema": store.schema, "runs": [], "watermarks": {},
                              "quota": None}
    try:
        runs = store.sync_log.recent_runs(limit=limit)
        marks = store.sync_log.watermarks()
        reconciles = latest_reconciles(store)
    except Exception as error:  # no tables yet: say so rather than fail
        report["error"] = f"no sync history yet ({type(error).__name__}); run `trestle-etl migrate`"
        return report
    # Ages of open runs and of locks by the database server's clock: leases are written by
    # it, and hosts whose clocks disagree then report the same ages.
    server_now = _server_now(store) or now
    report["runs"] = [
        {
            "run_id": r.run_id, "resource": r.resource, "status": r.status,
            "kind": run_kind(r),
            "started_at": r.started_at, "finished_at": r.finished_at,
            "fetched": r.records_fetched, "upserted": r.records_upserted,
            "rejected": r.records_rejected, "deleted": r.records_deleted,
            "api_requests": r.api_requests, "api_retries": r.api_retries,
            "api_rate_limited": r.api_rate_limited, "api_bytes": r.api_bytes,
            "error": r.error, **_open_run(r, server_now),
        }
        for r in runs
    ]
    _add_progress(store, report["runs"])
    report["locks"] = _run_locks(store)
    for resource, mark in marks.items():
        moment = mark.timestamp.to_datetime()
        report["watermarks"][resource] = {
            "watermark": mark.text,
            "lag_seconds": round((now - moment).total_seconds(), 1),
        }
    # The latest reconcile of each resource, failed ones too: the drift it found and what
    # it repaired is what says whether the copy equals the feed.
    report["reconcile"] = {resource: item.as_dict() for resource, item in reconciles.items()}
    if feed is not None:
        backlog = feed_backlog(feed, list(settings.resources), marks)
        report["behind_feed"] = backlog
        for resource, waiting in backlog.items():
            report["watermarks"].setdefault(resource, {"watermark": None, "lag_seconds": None})
            report["watermarks"][resource]["records_behind_feed"] = waiting
    report["freshness"] = _freshness(cluster, list(settings.resources))
    report["quota"] = _quota(cluster)
    # The operator's cap below the quota (TRESTLE_QUOTA_PER_MINUTE/_PER_HOUR), if any.
    report["quota_cap_per_minute"] = cluster.settings.quota_cap_per_minute
    quota = report["quota"] or {}
    report["usage"] = usage(
        store,
        hour_limit=_int(quota.get("hour_limit")),
        hour_available=_int(quota.get("hour_available")),
        cost_per_request=settings.cost_per_request,
        cost_per_gb=settings.cost_per_gb,
    ).as_dict()
    return report


def run_kind(run: SyncRun) -> str:
    """`sync`, `reconcile`, `dry run` (a reconcile that changed nothing) or `polls` (an
    hour of one resource's polls, summed in one row): a dry run's `failed` is not a sync
    that failed."""
    details = run.details if isinstance(run.details, dict) else {}
    if details.get("kind") == POLLS_KIND:
        return "polls"
    if details.get("kind") != "reconcile":
        return "sync"
    return "dry run" if details.get("dry_run") is True else "reconcile"


def database_not_created(settings: Any) -> dict[str, Any] | None:
    """The report for a SQLite file that does not exist yet (nothing migrated, or nothing
    configured): `status` says so instead of connecting, which would create it empty."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database).resolve()
    if path.exists() or not path.parent.is_dir():
        return None  # there, or not creatable: connecting says what is wrong
    return {"database": mask_url(settings.database_url), "schema": None, "runs": [],
            "watermarks": {}, "quota": None,
            "error": f"no database yet: {path} does not exist (DATABASE_URL); run "
                     "`trestle-etl migrate` to create it"}


def database_line(report: dict[str, Any]) -> str:
    """Where the feed's tables are: the URL, and the schema (PostgreSQL) or database
    (MySQL) they live in when it is not the URL's own (DATABASE_SCHEMA, feed_<name>)."""
    line = f"Database: {report['database']}"
    if report.get("schema"):
        line += f" (tables in schema {report['schema']})"
    return line


def _server_now(store: Store) -> datetime | None:
    from trestle_tasks.store.dbclock import read_db_now

    try:
        return read_db_now(store.engine)
    except Exception:  # a dialect without a clock expression: the host's then
        return None


def _open_run(run: SyncRun, now: datetime) -> dict[str, Any]:
    """For a run not yet closed (planning or running): how long it has been open, and
    the worker planning it (the `planner` its row's details name)."""
    if run.status not in OPEN_STATUSES or run.finished_at is not None:
        return {"open_for_s": None, "planner": None}
    details = run.details if isinstance(run.details, dict) else {}
    planner = details.get("planner")
    return {"open_for_s": round(max((now - run.started_at).total_seconds(), 0.0), 1),
            "planner": planner if isinstance(planner, str) else None}


def _add_progress(store: Store, runs: list[dict[str, Any]]) -> None:
    """How far each open run's windows have got, and about how long is left at the rate
    so far (a long backfill's progress and ETA)."""
    open_runs = [(r["run_id"], r["resource"]) for r in runs if r.get("open_for_s") is not None]
    try:
        progress = run_progress(store, open_runs)
    except Exception as error:  # an older database without the ledger: the rest stands
        log.warning("run progress not read: %s", type(error).__name__)
        return
    for run in runs:
        found = progress.get((run["run_id"], run["resource"]))
        if found is None:
            continue
        fraction, left_s = found.fraction, found.left_s(run["open_for_s"] or 0.0)
        run["progress"] = {
            "windows_total": found.windows_total, "windows_done": found.windows_done,
            "windows_failed": found.windows_failed, "fetched": found.fetched,
            "expected": found.expected,
            "percent": None if fraction is None else round(100 * fraction, 1),
            "left_s": None if left_s is None else round(left_s)}


def _progress_line(progress: dict[str, Any]) -> str:
    line = (f"      windows {progress['windows_done']}/{progress['windows_total']} done"
            + (f" ({progress['windows_failed']} failed)" if progress["windows_failed"] else "")
            + f", {progress['fetched']:,} records fetched")
    if progress["expected"]:
        line += f" of ~{progress['expected']:,} ({progress['percent']:g} %)"
    if progress["left_s"] is not None:
        line += f", about {_duration(progress['left_s'])} left at this rate"
    return line


def _run_locks(store: Store) -> list[dict[str, Any]] | dict[str, str]:
    """Every held run lock: its owner run, fence, age and lease; `orphaned` when the lease
    lapsed with the owner still set (the owner stopped renewing it: a killed process).
    `owner_status` is the owner run's status in the sync log (None: no row for it)."""
    from trestle_tasks.coordination.db_lock import DatabaseRunLock

    try:
        held = DatabaseRunLock(store.engine, schema=store.schema,
                               retry=store.retry).held_locks()
        owners = {(lock.owner, lock.name): store.sync_log.get_run(lock.owner, lock.name)
                  for lock in held}
    except Exception as error:  # the rest of the report still stands
        return {"error": f"run locks not read: {type(error).__name__}"}
    locks = []
    for lock in held:
        run = owners[(lock.owner, lock.name)]
        held_s, left_s = lock.held_s, lock.lease_left_s
        locks.append({
            "resource": lock.name, "owner": lock.owner, "fence": lock.fence,
            "acquired_at": lock.acquired_at, "expires_at": lock.expires_at,
            "held_s": None if held_s is None else round(held_s, 1),
            "lease_left_s": None if left_s is None else round(left_s, 1),
            "orphaned": lock.orphaned,
            "owner_status": None if run is None else run.status,
            "owner_finished": run is not None and (run.finished_at is not None
                                                   or run.status not in OPEN_STATUSES),
        })
    return locks


def _freshness(cluster: ClusterRuntime, resources: list[str]) -> dict[str, Any]:
    """Per resource: change-to-commit times over the last hour, and its poll schedule."""
    settings = cluster.settings
    report: dict[str, Any] = {"polling_share": settings.poll_quota_share,
                              "alert_p95_s": settings.alert_freshness_s, "resources": {}}
    if settings.client_id is None:
        return report
    try:
        recorder = FreshnessRecorder(cluster.redis, cluster.credential_id)
        schedule = PollStateStore(cluster.redis, cluster.credential_id).load().resources
        now = time.time()
        offset = recorder.clock(now=now)
        report["clock_offset_s"] = offset
        report["clock_warning"] = clock_warning(offset, settings.settle_s)
        for resource in resources:
            figures = recorder.recent(resource, now=now)
            polls = schedule.get(resource)
            report["resources"][resource] = {
                "samples": figures.samples, "p50_s": figures.p50_s, "p95_s": figures.p95_s,
                "max_s": figures.max_s, "ahead": figures.ahead,
                "ahead_max_s": figures.ahead_max_s,
                "poll_interval_s": polls.interval_s if polls else None,
                "last_poll_s_ago": (now - polls.last_poll_at
                                    if polls and polls.last_poll_at else None),
                "last_poll": polls.last_status if polls else None,
            }
    except Exception as error:
        report["error"] = f"Redis did not answer: {type(error).__name__}"
    return report


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _quota(cluster: ClusterRuntime) -> dict[str, Any] | None:
    """The shared limiter's view, when Redis answers and a credential is configured."""
    if cluster.settings.client_id is None:
        return None
    try:
        values = cluster.quota_limiter().state()
    except Exception as error:
        return {"error": f"Redis did not answer: {type(error).__name__}"}
    if not values:
        return None
    return {name: values.get(name) for name in (
        "minute_limit", "minute_available", "hour_limit", "hour_available", "hour_reset_ms",
        "rate_limited", "observed_ms")}


def render_status(report: dict[str, Any]) -> str:
    lines = [database_line(report)]
    if report.get("error"):
        lines.append(report["error"])
        return "\n".join(lines)
    lines.append("")
    lines.append("Recent runs:")
    if not report["runs"]:
        lines.append("  (none yet)")
    for run in report["runs"]:
        started = run["started_at"].strftime("%Y-%m-%d %H:%M:%S") if run["started_at"] else "?"
        kind = run.get("kind", "sync")
        shown = run["status"] if kind == "sync" else f"{kind} {run['status']}"
        lines.append(
            f"  {started}  {run['resource']:<10} {shown:<11} "
            f"fetched {run['fetched']:>8,}  upserted {run['upserted']:>8,}  "
            f"rejected {run['rejected']:>5,}  requests {run['api_requests']:>6,}  "
            f"429s {run['api_rate_limited']:>3,}  {run['run_id']}"
        )
        if run.get("open_for_s") is not None:
            line = f"      {run['status']} for {_duration(run['open_for_s'])}"
            if run.get("planner"):
                line += f" by {run['planner']}"
            lines.append(line)
            if run.get("progress"):
                lines.append(_progress_line(run["progress"]))
        if run["error"]:
            lines.append(f"      error: {run['error'][:200]}")
    lines.extend(_lock_lines(report.get("locks")))
    lines.append("")
    lines.append("Watermarks (lag behind now; with --live, records the feed holds past them):")
    if not report["watermarks"]:
        lines.append("  (none yet)")
    for resource, mark in sorted(report["watermarks"].items()):
        lag = f"lag {mark['lag_seconds']:,.0f} s" if mark["lag_seconds"] is not None else ""
        line = f"  {resource:<10} {mark['watermark'] or '(never synced)'}  {lag}"
        behind = mark.get("records_behind_feed")
        if isinstance(behind, int):
            line += f"  {behind:,} records behind the feed"
        elif isinstance(behind, dict):
            line += f"  feed not asked: {behind['error']}"
        lines.append(line)
    lines.append("")
    lines.extend(_reconcile_lines(report.get("reconcile") or {}))
    lines.append("")
    lines.extend(_freshness_lines(report.get("freshness")))
    quota = report.get("quota")
    if not quota:
        lines.append("Quota: no response observed yet")
    elif "error" in quota:
        lines.append(f"Quota: {quota['error']}")
    else:
        lines.append(
            f"Quota: minute {quota.get('minute_available')}/{quota.get('minute_limit')} "
            f"available, hour {quota.get('hour_available')}/{quota.get('hour_limit')} "
            f"available, 429s seen {quota.get('rate_limited') or 0}"
        )
    if (cap := report.get("quota_cap_per_minute")) is not None:
        lines.append(f"Quota cap: this feed paces at most {cap:,.4g} requests a minute "
                     "(TRESTLE_QUOTA_PER_MINUTE / TRESTLE_QUOTA_PER_HOUR)")
    use = report.get("usage")
    if use:
        line = (f"API usage: {use['last_10_minutes']:,} requests in 10 min, "
                f"{use['last_hour']:,} in the last hour, {use['last_day']:,} in 24 h; "
                f"{use['gigabytes_last_day'] * 1024:,.1f} MB received in 24 h")
        runway = use["minutes_until_hour_quota_runs_out"]
        if runway is not None:
            # The hour quota refills every hour: a runway past the hour means it lasts.
            line += (f"; at this rate the hour quota runs out in {runway:,.0f} min"
                     if runway < 60 else "; at this rate the hour quota lasts the hour")
        if use["estimated_cost_last_day"] is not None:
            line += f"; estimated cost over 24 h {use['estimated_cost_last_day']:,.2f}"
        lines.append(line)
    return "\n".join(lines)


def _freshness_lines(fresh: dict[str, Any] | None) -> list[str]:
    if not fresh:
        return []
    share = fresh.get("polling_share") or 0
    lines = [f"Freshness (a change's timestamp to its commit here, last hour; polling "
             f"{share:.0%} of the hour quota):" if share else
             "Freshness (a change's timestamp to its commit here, last hour; polling off):"]
    if fresh.get("error"):
        return [*lines, f"  {fresh['error']}", ""]
    ahead, ahead_by = 0, 0.0
    for resource, item in fresh.get("resources", {}).items():
        if item["samples"]:
            line = (f"  {resource:<10} p50 {item['p50_s']:,.1f} s  p95 {item['p95_s']:,.1f} s  "
                    f"max {item['max_s']:,.1f} s  ({item['samples']:,} records)")
            if item["p95_s"] > fresh["alert_p95_s"]:
                line += f"  over the {fresh['alert_p95_s']:,.0f} s alert threshold"
        else:
            line = f"  {resource:<10} no change stored in the last hour"
        if item["poll_interval_s"] is not None:
            line += f"; polled every {_duration(item['poll_interval_s'])}"
            if item["last_poll_s_ago"] is not None:
                line += (f", last {_duration(item['last_poll_s_ago'])} ago "
                         f"({item['last_poll']})")
        lines.append(line)
        ahead += item["ahead"]
        ahead_by = max(ahead_by, item["ahead_max_s"])
    if ahead:
        lines.append(f"  Trestle's clock looks {ahead_by:,.1f} s ahead of ours: {ahead:,} "
                     "records were stamped after we stored them")
    if fresh.get("clock_warning"):
        lines.append(f"  {fresh['clock_warning']}")
    elif fresh.get("clock_offset_s") is not None:
        lines.append(f"  Trestle's clock and ours agree (its Date header is "
                     f"{fresh['clock_offset_s']:+,.1f} s from ours, whole seconds)")
    lines.append("")
    return lines


def _duration(seconds: float) -> str:
    """`42 s`, `5 min 3 s`, `2 h 10 min`: an age at a glance."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600:,} h {whole % 3600 // 60} min"


def _lock_lines(locks: list[dict[str, Any]] | dict[str, str] | None) -> list[str]:
    """The held run locks, each with its owner run and age; none held: no section."""
    if not locks:
        return []
    lines = ["", "Run locks (held; ages by the database's clock):"]
    if isinstance(locks, dict):
        lines.append(f"  {locks.get('error')}")
        return lines
    for lock in locks:
        held = "?" if lock["held_s"] is None else _duration(lock["held_s"])
        line = (f"  {lock['resource']:<10} owner {lock['owner']}  fence {lock['fence']:,}  "
                f"held for {held}")
        left = lock["lease_left_s"]
        if lock["orphaned"]:
            ago = "" if left is None else f" {_duration(-left)} ago"
            line += f"  orphaned: lease lapsed{ago} (its owner stopped renewing it)"
        else:
            line += f"  lease left {_duration(left)}"
        if lock["owner_status"] is not None:
            line += f"  owner run {lock['owner_status']}"
        if lock["owner_finished"]:
            line += "  (owner run finished but kept the lock)"
        lines.append(line)
    return lines


def _figure(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"  # a row of an older version: unknown


def _reconcile_lines(latest: dict[str, dict[str, Any]]) -> list[str]:
    """Each resource's latest reconcile: what it found (drift) and what it did about it."""
    lines = ["Reconcile (latest per resource; drift = missing + stale + gone):"]
    if not latest:
        lines.append("  (none yet)")
    for resource, item in sorted(latest.items()):
        moment = item["finished_at"] or item["started_at"]
        when = moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "?"
        how = item["status"]
        if item["dry_run"]:  # changed nothing: the figures are drift left in place
            how = "dry run" if how == "succeeded" else f"dry run {how}"
        line = f"  {when}  {resource:<10} {how:<10}"
        if item["census"] is None:
            line += "  no census figures"
        else:
            line += (f"  census {_figure(item['census'])}  missing {_figure(item['missing'])}"
                     f"  stale {_figure(item['stale'])}  gone {_figure(item['gone'])}"
                     f"  fetched {_figure(item['fetched'])}"
                     f"  deleted {_figure(item['deleted'])}"
                     f"  restored {_figure(item['restored'])}")
        line += f"  requests {_requests(item)}"
        lines.append(line)
        if item["error"]:
            lines.append(f"      error: {item['error'][:200]}")
    return lines


def _requests(item: dict[str, Any]) -> str:
    """All requests, with the census / repair split when the run recorded it."""
    total = f"{item['api_requests']:,}"
    census, repair = item["census_requests"], item["repair_requests"]
    if census is None and repair is None:
        return total
    return f"{total} ({_figure(census)} census, {_figure(repair)} repair)"
