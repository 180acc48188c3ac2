"""`trestle-etl`: the operator's command line (also `python -m trestle_tasks`).

Every command exits 0 on success and non-zero with a one-line reason on stderr otherwise;
`--debug` adds the traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

import click

from trestle_tasks.cli.errors import (
    EXIT_BAD_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_SKIPPED,
    describe,
    one_line,
)
from trestle_tasks.core.errors import ConfigurationError, FatalError, TrestleTasksError

if TYPE_CHECKING:
    from trestle_tasks.worker.runtime import Runtime

    _R = TypeVar("_R", bound=Runtime)


class _Group(click.Group):
    """Turns every failure into one clear line and an exit code scripts can trust."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # A bad top-level option fails here, before `invoke`: one line too, same exit 2.
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # bare `trestle-etl` shows the help, as click does
        except click.UsageError as error:
            click.echo(f"trestle-etl: error: {one_line(error.format_message())} "
                       "(see `trestle-etl --help`)", err=True)
            sys.exit(EXIT_BAD_CONFIG)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            # click's own rendering is three lines (usage, hint, message): keep one.
            command = error.ctx.command_path if error.ctx else "trestle-etl"
            click.echo(f"trestle-etl: error: {one_line(error.format_message())} "
                       f"(see `{command} --help`)", err=True)
            ctx.exit(EXIT_BAD_CONFIG)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt as interrupt:
            _interrupted(ctx, interrupt)
        except Exception as error:
            if _closed_pipe(error):
                # `export … | head`: the reader has all it wanted. Unix tools end quietly
                # with status 0 here; so do we.
                _silence_stdout()
                ctx.exit(0)
            _fail(ctx, error)


def _closed_pipe(error: BaseException | None) -> bool:
    """The error, or one it was raised from, is a write to a pipe whose reader left."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, BrokenPipeError):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not fail (and print) again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _interrupted(ctx: click.Context, interrupt: KeyboardInterrupt) -> None:
    """Ctrl-C: one line saying what became of the run under way (`sync --local` and
    `reconcile` close it `interrupted` and release its lock first), exit status 130."""
    from trestle_tasks.sync.interrupt import RunInterrupted

    # Everything worth doing is done: a further Ctrl-C (the exit waiting for a window
    # thread's last request, say) ends the process at once, without a traceback.
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exception(interrupt, file=sys.stderr)
    what = (interrupt.describe() if isinstance(interrupt, RunInterrupted)
            else "stopped by Ctrl-C")
    with contextlib.suppress(OSError):  # stderr already gone: the status still says it
        click.echo(f"trestle-etl: interrupted: {what}", err=True)
    ctx.exit(EXIT_INTERRUPTED)


def _fail(ctx: click.Context, error: BaseException) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exception(error, file=sys.stderr)
    message, code = describe(error)
    click.echo(f"trestle-etl: error: {message}", err=True)
    ctx.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="trestle-tasks")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Keep a copy of a Trestle (RESO Web API) MLS feed in your own database."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


resource_option = click.option(
    "--resource", "resources", multiple=True, metavar="R",
    help="Resource to work on (repeatable; default: every one in TRESTLE_RESOURCES).",
)
feed_option = click.option(
    "--feed", "feed_name", default=None, metavar="NAME",
    help="Feed to work on (one of TRESTLE_FEEDS); without it, every feed.",
)
# export writes one feed's records: the same listing key may be in two feeds.
one_feed_option = click.option(
    "--feed", "feed_name", default=None, metavar="NAME",
    help="Feed whose records to export (one of TRESTLE_FEEDS); needed with several feeds.",
)


@main.command("check-config")
@feed_option
def check_config(feed_name: str | None) -> None:
    """Validate settings and check that Trestle, the database and Redis answer, for every
    feed (or --feed NAME)."""
    from trestle_tasks.cli.health import CHECK_TIMEOUT_S, check_settings, run_checks
    from trestle_tasks.core.feeds import feed_variable, load_feeds
    from trestle_tasks.core.logs import configure_logging
    from trestle_tasks.core.settings import FEED_SCOPED
    from trestle_tasks.worker.runtime import LocalRuntime

    feeds = load_feeds(require_credentials=False)
    chosen = _chosen_feeds(feeds, feed_name)
    first = next(iter(feeds.values()))
    configure_logging("WARNING", first.log_format, first.secret_values())
    named = bool(first.feed_names)  # TRESTLE_FEEDS is set: settings per feed
    click.echo("Settings:" if not named else "Settings of the whole deployment:")
    for name, value in first.masked().items():
        if not named or name not in FEED_SCOPED:
            click.echo(f"  {name:<24} {value}")
    failures = 0
    for name, settings in chosen.items():
        if named:
            click.echo(f"Feed {name} (its own: {feed_variable(name, '')}<VARIABLE>):")
            for variable, value in settings.masked().items():
                if variable in FEED_SCOPED:
                    click.echo(f"  {variable:<24} {value}")
        click.echo(f"Checks{f' of feed {name}' if named else ''} (each gives up after "
                   f"{CHECK_TIMEOUT_S:g} s):")
        for check in run_checks(LocalRuntime(check_settings(settings)), on_start=_checking):
            mark = "ok  " if check.ok else "FAIL"
            _clear_checking()
            click.echo(f"  {mark} {check.name:<16} {check.detail}")
            failures += not check.ok
    if failures:
        raise FatalError(f"{failures} check(s) failed")


def _checking(name: str, doing: str) -> None:
    """On a terminal, what the check under way is doing, until its result replaces it."""
    if sys.stderr.isatty():
        click.echo(f"  ...  {name:<16} {doing}", err=True, nl=False)


def _clear_checking() -> None:
    if sys.stderr.isatty():
        click.echo("\r\033[K", err=True, nl=False)


def _chosen_feeds(feeds: dict[str, Any], feed: str | None) -> dict[str, Any]:
    """`feed` alone (`--feed NAME`), or every feed; a name TRESTLE_FEEDS lacks is a usage
    error."""
    if feed is None:
        return feeds
    if feed not in feeds:
        raise click.BadParameter(f"{feed!r} is not a feed (TRESTLE_FEEDS: "
                                 f"{', '.join(feeds)})", param_hint="--feed")
    return {feed: feeds[feed]}


def _feed_settings(require_credentials: bool = True, *, reports_itself: bool = False,
                   feed: str | None = None) -> dict[str, Any]:
    """Each chosen feed's settings (`feed`, or every feed TRESTLE_FEEDS names; without it
    the one feed, `default`), with logging set up for a command.

    A command that `reports_itself` (a summary table, a one-line error) shows only ERROR
    log lines on stderr, so a failure reads as one line, not as a warning and then the
    same failure again; `--debug` shows every line.
    """
    import logging

    from trestle_tasks.core.feeds import load_feeds
    from trestle_tasks.core.logs import configure_logging

    chosen = _chosen_feeds(load_feeds(require_credentials=require_credentials), feed)
    settings = next(iter(chosen.values()))  # logging is cluster-wide: any feed's will do
    debug = bool((click.get_current_context().find_root().obj or {}).get("debug"))
    # On a terminal, INFO lines would drown the progress bar; the files keep them.
    level = "DEBUG" if debug else (
        settings.log_level if settings.log_level != "INFO" else "WARNING")
    configure_logging(level, settings.log_format, settings.secret_values(), settings.log_dir)
    if reports_itself and not debug:
        for handler in logging.getLogger().handlers:
            if getattr(handler, "_trestle_tasks", False) and \
                    type(handler) is logging.StreamHandler:
                # Errors only; but a request that starts waiting out an outage says so
                # (once, with until when), rather than leaving minutes of silence.
                handler.addFilter(_errors_and_retry_notes)
    return chosen


def _errors_and_retry_notes(record: Any) -> bool:
    import logging

    from trestle_tasks.trestle.retry_notes import NOTES_LOGGER

    return bool(record.levelno >= logging.ERROR or record.name == NOTES_LOGGER)


def _settings(require_credentials: bool = True, *, reports_itself: bool = False,
              feed: str | None = None) -> Any:
    """One feed's settings (see `_feed_settings`): `feed`, or the only one configured."""
    chosen = _feed_settings(require_credentials, reports_itself=reports_itself, feed=feed)
    if len(chosen) > 1:
        raise click.UsageError(f"several feeds are configured ({', '.join(chosen)}): "
                               "choose one with --feed")
    return next(iter(chosen.values()))


def _runtime(kind: type[_R], require_credentials: bool = True, *,
             reports_itself: bool = False, feed: str | None = None) -> _R:
    """The command's runtime (runtime.py), built once from its settings (see `_settings`)
    and passed down to what the command calls.

    `kind` is `ClusterRuntime` for a command that speaks for the workers (shares their
    token cache, quota limiter and alert cooldown in Redis), `LocalRuntime` for one that
    works alone in this process. A command that `reports_itself` works on the database,
    so it is checked first.
    """
    runtime = kind(_settings(require_credentials, reports_itself=reports_itself, feed=feed))
    if reports_itself:  # fail at once, in one line, if the database won't answer
        from trestle_tasks.store.probe import require_database

        require_database(runtime.store.engine)
    return runtime


def _check_resources(settings: Any, resources: tuple[str, ...]) -> list[str]:
    chosen = list(resources) or list(settings.resources)
    unknown = [r for r in chosen if r not in settings.resources]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)} not in TRESTLE_RESOURCES ({','.join(settings.resources)})",
            param_hint="--resource",
        )
    return chosen


@main.command()
@resource_option
@feed_option
def migrate(resources: tuple[str, ...], feed_name: str | None) -> None:
    """Read $metadata and create or evolve the tables (safe to run again), for --feed or
    for every feed."""
    from trestle_tasks.core.feeds import feed_variable
    from trestle_tasks.store.probe import require_database
    from trestle_tasks.worker.runtime import LocalRuntime

    feeds = _feed_settings(reports_itself=True, feed=feed_name)
    several = len(feeds) > 1
    problems: list[str] = []
    failed: dict[str, TrestleTasksError] = {}
    for name, settings in feeds.items():
        if several:
            click.echo(f"feed {name}:")
        runtime = LocalRuntime(settings)
        try:
            require_database(runtime.store.engine)
            problems += _migrate_feed(runtime, resources,
                                      prefix=feed_variable(name, "") if several else "")
        except TrestleTasksError as error:
            if not several:
                raise
            # One feed's refused credential or unreachable database: the others still go.
            click.echo(f"  failed: {error}")
            failed[name] = error
    if failed:
        first, cause = next(iter(failed.items()))
        raise FatalError(f"{len(failed)} of {len(feeds)} feeds could not be migrated: feed "
                         f"{first}: {cause}" + (" (and more above)" if len(failed) > 1 else ""))
    if problems:
        raise ConfigurationError(
            problems[0] if len(problems) == 1 else
            f"{len(problems)} feeds name resources their $metadata does not declare: "
            + "; ".join(problems), problems=problems)


def _migrate_feed(runtime: Any, resources: tuple[str, ...], *, prefix: str) -> list[str]:
    """One feed's tables created or evolved; a problem line if its TRESTLE_RESOURCES names
    a resource its $metadata does not declare (the other resources are migrated)."""
    from trestle_tasks.cli.render import describe_migration
    from trestle_tasks.sync.schema import migrate_from_service

    settings = runtime.settings
    chosen = _check_resources(settings, resources)
    report = migrate_from_service(runtime.store, runtime.trestle_client(), chosen)
    for line in describe_migration(report):
        click.echo(line)
    if not report.missing_resources:
        return []
    missing = ", ".join(report.missing_resources)
    return [f"{prefix}TRESTLE_RESOURCES names {missing}, which $metadata at "
            f"{settings.base_url} does not declare: remove it from {prefix}TRESTLE_RESOURCES "
            "(or check that the subscription licenses it)"]


@main.command()
@resource_option
@click.option("--full", is_flag=True, help="Ignore the watermark and sync everything.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the run and print its summary.")
@click.option("--local", is_flag=True,
              help="Run in this process, without Celery or Redis (same database lock).")
@click.option("--timeout", default=24 * 3600.0, show_default=True, type=click.FloatRange(1),
              help="Seconds --wait waits before giving up.")
@feed_option
def sync(resources: tuple[str, ...], full: bool, wait_: bool, local: bool,
         timeout: float, feed_name: str | None) -> None:
    """Sync resources: dispatch a run to the workers (or run it here with --local), for
    --feed or for every feed."""
    from trestle_tasks.store.probe import require_database
    from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

    feeds = _feed_settings(reports_itself=True, feed=feed_name)
    several = len(feeds) > 1
    rows: list[tuple[str, Any, str | None]] = []
    if local:
        for name, settings in feeds.items():
            here = LocalRuntime(settings)
            require_database(here.store.engine)
            rows += _sync_here(here, resources, full=full, label=name if several else None)
    else:
        # Every feed's runs are sent before any is waited for: the feeds sync side by side.
        sent = []
        for name, settings in feeds.items():
            cluster = ClusterRuntime(settings)
            require_database(cluster.store.engine)
            sent.append((name, cluster, _dispatch(cluster, resources, full=full)))
        if not wait_:
            for name, _cluster, run in sent:
                click.echo(f"{name} {run.run_id}" if several else run.run_id)
            return
        rows += _wait(sent, timeout=timeout, several=several)
    _print_summary(rows)
    undeclared = [error[error.index(_UNDECLARED):] for _, run, _ in rows
                  if run is not None and run.status == "failed"
                  and _UNDECLARED in (error := run.error or "")]
    if undeclared:
        # As an unknown --resource: a setting to fix (exit 2); every outcome is above.
        raise ConfigurationError(undeclared[0] if len(undeclared) == 1 else
                                 "; ".join(undeclared))
    if any(run is not None and run.status != "succeeded" for _, run, _ in rows):
        raise FatalError("the sync did not fully succeed; see above and `trestle-etl status`")
    if any(run is None for _, run, _ in rows):
        # A script asking for a sync must not mistake "another run was busy" for done.
        click.echo("trestle-etl: skipped: another run holds the lock; nothing was synced "
                   "for the resources marked skipped", err=True)
        click.get_current_context().exit(EXIT_SKIPPED)


def _sync_here(here: Any, resources: tuple[str, ...], *, full: bool,
               label: str | None) -> list[tuple[str, Any, str | None]]:
    """One feed synced in this process (`sync --local`): its rows for the summary."""
    from trestle_tasks.cli.local import sync_local
    from trestle_tasks.cli.progress import grow, progress

    chosen = _check_resources(here.settings, resources)
    if label is not None:
        click.echo(f"feed {label}:", err=True)
    with progress("records") as bar:
        def on_plan(plan: Any) -> None:
            grow(bar, sum(w.expected or 0 for w in plan.windows))

        results = sync_local(here, chosen, full=full, on_plan=on_plan, on_records=bar.update)
    return [(_row_name(r.resource, label), r.run, r.skipped.reason if r.skipped else None)
            for r in results]


def _dispatch(cluster: Any, resources: tuple[str, ...], *, full: bool) -> Any:
    """One feed's runs sent to the workers."""
    from trestle_tasks.cli.preflight import require_broker
    from trestle_tasks.worker import dispatch

    settings = cluster.settings
    chosen = _check_resources(settings, resources)
    require_broker(settings.broker_url, settings.result_backend,
                   needed_for="`sync` without --local")
    return dispatch.dispatch(chosen, full=full, feed=settings.feed)


def _wait(sent: list[tuple[str, Any, Any]], *, timeout: float,
          several: bool) -> list[tuple[str, Any, str | None]]:
    """Every feed's dispatched runs followed to their end side by side, each resource told
    as it ends: their rows for the summary."""
    from trestle_tasks.cli.progress import follow, progress
    from trestle_tasks.worker import dispatch

    followed = []
    for name, cluster, run in sent:
        label = name if several else None
        prefix = f"feed {label}: " if label is not None else ""
        click.echo(f"{prefix}run {run.run_id} dispatched; waiting …", err=True)
        followed.append(dispatch.Followed(
            run, cluster.store, label=label,
            liveness=dispatch.ClusterLiveness(cluster.redis, cluster.run_lock())))
    with progress("records", 1) as bar:
        finished = dispatch.wait_all(
            followed, timeout_s=timeout,
            on_progress=lambda done, total: follow(bar, done, total),
            on_note=lambda text: click.echo(text, err=True),
            on_finished=lambda ended: click.echo(_ended_line(ended), err=True))
    return [(_row_name(f.resource, f.label),
             _NeverPlanned(f.failed) if f.failed is not None else f.run,
             f.skipped_reason or f.orphaned)
            for f in finished]


# How sync/schema.require_declared starts its ConfigurationError, as a run's error or a
# failed plan task's reason carries it: TRESTLE_RESOURCES names what $metadata lacks.
_UNDECLARED = "$metadata does not declare"


@dataclasses.dataclass(frozen=True)
class _NeverPlanned:
    """The summary row of a resource whose run was never planned (its plan task failed,
    e.g. $metadata does not declare it): failed, with the reason, beside the others."""

    error: str
    status: str = "failed"
    run_id: str = "(not planned)"
    records_fetched: int = 0
    records_upserted: int = 0
    records_rejected: int = 0
    api_requests: int = 0


def _ended_line(ended: Any) -> str:
    """One line as each resource's run ends (the summary follows once all have)."""
    name = _row_name(ended.resource, ended.label)
    run = ended.run
    if ended.failed is not None:
        return f"{name}: failed: {ended.failed}"
    if run is None:
        return f"{name}: skipped: {ended.skipped_reason}"
    if ended.orphaned:
        return f"{name}: {ended.orphaned}"
    seconds = ((run.finished_at - run.started_at).total_seconds()
               if run.finished_at is not None else 0.0)
    return (f"{name}: {run.status} in {seconds:.0f} s, {run.records_fetched:,} fetched "
            f"(run {run.run_id})")


def _row_name(resource: str, feed: str | None) -> str:
    return resource if feed is None else f"{feed}/{resource}"


def _print_summary(rows: list[tuple[str, Any, str | None]]) -> None:
    # Wide enough for the longest name (north/OpenHouse with several feeds).
    width = max([12, *(len(name) + 1 for name, _, _ in rows)])
    click.echo(f"{'resource':<{width}} {'status':<10} {'fetched':>9} {'upserted':>9} "
               f"{'rejected':>8} {'requests':>8}  run")
    for resource, run, skipped in rows:
        if run is None:
            click.echo(f"{resource:<{width}} {'skipped':<10} {'':>9} {'':>9} {'':>8} "
                       f"{'':>8}  {skipped}")
            continue
        click.echo(f"{resource:<{width}} {run.status:<10} {run.records_fetched:>9,} "
                   f"{run.records_upserted:>9,} {run.records_rejected:>8,} "
                   f"{run.api_requests:>8,}  {run.run_id}")
        if skipped:  # a run `sync --wait` stopped following: why
            click.echo(f"{'':<{width}} {skipped}")
        if run.error:
            click.echo(f"{'':<{width}} error: {run.error}")


@main.command()
@resource_option
@click.option("--local", is_flag=True,
              help="Pace requests in this process instead of through Redis.")
@click.option("--dry-run", is_flag=True,
              help="Take the census and report what differs; change nothing.")
@click.option("--max-delete-fraction", default=0.5, show_default=True,
              type=click.FloatRange(0, 1),
              help="Refuse when more than this share of stored records would be deleted.")
@feed_option
def reconcile(resources: tuple[str, ...], local: bool, dry_run: bool,
              max_delete_fraction: float, feed_name: str | None) -> None:
    """Make the store equal to the feed: a (key, timestamp) census, compared and repaired,
    for --feed or for every feed.

    Records missing from the store or stored older than the feed's copy are fetched and
    stored; records that left the feed are marked deleted.
    """
    from trestle_tasks.cli.preflight import require_redis
    from trestle_tasks.store.probe import require_database
    from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

    feeds = _feed_settings(reports_itself=True, feed=feed_name)
    several = len(feeds) > 1
    # Without --local the census and repair take their turns at the cluster's quota.
    runtimes = {name: (LocalRuntime if local else ClusterRuntime)(settings)
                for name, settings in feeds.items()}
    chosen = {name: _check_resources(runtime.settings, resources)
              for name, runtime in runtimes.items()}
    never_synced: list[str] = []
    unsynced: dict[str, list[str]] = {}
    for name, runtime in runtimes.items():
        require_database(runtime.store.engine)
        if not local:  # the cluster's quota limiter lives in Redis: say so at once if down
            require_redis(runtime.settings.redis_url,
                          needed_for="`reconcile` without --local (its requests take turns "
                                     "at the cluster's quota in Redis)")
        try:
            stored = set(runtime.store.resources())
        except Exception:  # not even the bookkeeping tables: nothing was ever synced here
            stored = set()
        missing = [r for r in chosen[name] if r not in stored]
        never_synced += [_row_name(r, name if several else None) for r in missing]
        if stored:  # migrate ran, yet these have no table: $metadata may not declare them
            unsynced[name] = missing
    if never_synced:
        _refuse_undeclared(runtimes, unsynced)
        # Nothing stored means nothing to compare with: say what to run instead.
        raise FatalError(f"{', '.join(never_synced)} never synced into this database: run "
                         "`trestle-etl migrate` and a sync first")
    failures: dict[str, str] = {}
    skipped = False
    width = max([12, *(len(_row_name(r, name if several else None)) + 1
                       for name, names in chosen.items() for r in names)])
    click.echo(f"{'resource':<{width}} {'census':>9} {'missing':>8} {'stale':>6} {'gone':>6} "
               f"{'fetched':>8} {'deleted':>8} {'requests':>8}"
               + ("  (dry run: nothing changed)" if dry_run else ""))
    for name, runtime in runtimes.items():
        feed_failures, feed_skipped = _reconcile_feed(
            runtime, chosen[name], dry_run=dry_run,
            max_delete_fraction=max_delete_fraction, label=name if several else None,
            width=width)
        failures.update(feed_failures)
        skipped = skipped or feed_skipped
    if failures:
        # The one stderr line names the cause: shared by all (bad credentials), or the first.
        first, reason = next(iter(failures.items()))
        cause = (reason if len(set(failures.values())) == 1
                 else f"{first}: {reason} (and more above)")
        raise FatalError(f"{len(failures)} resource(s) could not be reconciled and nothing "
                         f"was changed for them: {cause}")
    if skipped:
        click.echo("trestle-etl: skipped: another run holds the lock; nothing was reconciled "
                   "for the resources marked skipped", err=True)
        click.get_current_context().exit(EXIT_SKIPPED)


def _refuse_undeclared(runtimes: dict[str, Any], unsynced: dict[str, list[str]]) -> None:
    """A resource with no table that $metadata does not declare is a setting to fix
    (exit 2, as in every command), not something `migrate` and a sync would cure."""
    from trestle_tasks.edm.metadata import parse_metadata

    for name, resources in unsynced.items():
        if not resources:
            continue
        try:
            declared = set(parse_metadata(runtimes[name].trestle_client().get_metadata())
                           .resources)
        except Exception:  # the feed does not answer: the advice to sync first stands
            declared = set(resources)
        undeclared = [r for r in resources if r not in declared]
        if undeclared:
            raise ConfigurationError(
                f"$metadata does not declare {', '.join(undeclared)}: remove "
                f"{'it' if len(undeclared) == 1 else 'them'} from TRESTLE_RESOURCES (or check "
                "that the subscription licenses it)")


def _reconcile_feed(runtime: Any, chosen: list[str], *, dry_run: bool,
                    max_delete_fraction: float, label: str | None, width: int
                    ) -> tuple[dict[str, str], bool]:
    """One feed's resources reconciled, a row each: (failures by row name, any skipped)."""
    from trestle_tasks.cli.progress import progress
    from trestle_tasks.sync.local import in_process_lease
    from trestle_tasks.sync.plan import Skipped, new_run_id
    from trestle_tasks.sync.reconcile import reconcile as reconcile_resource
    from trestle_tasks.worker import alert_hooks as alerts

    settings, store = runtime.settings, runtime.store
    failures: dict[str, str] = {}
    skipped = False
    for resource in chosen:
        row = _row_name(resource, label)
        expected = store.count(resource)  # the census should find about as many records
        run_id = new_run_id()
        try:
            with progress(f"{row} census", expected) as bar:
                result = reconcile_resource(
                    resource, store=store, run_id=run_id,
                    client=runtime.trestle_client(),
                    lock=runtime.run_lock(),
                    lock_ttl_s=in_process_lease(settings),
                    max_delete_fraction=max_delete_fraction, dry_run=dry_run,
                    synced_resources=settings.resources, on_census=bar.update,
                )
        except TrestleTasksError as error:
            click.echo(f"{row:<{width}} failed: {error}")
            failures[row] = str(error)
            with contextlib.suppress(Exception):  # the database may be what failed
                alerts.after_run(runtime, store.sync_log.get_run(run_id, resource))
            continue
        if isinstance(result, Skipped):
            click.echo(f"{row:<{width}} skipped: {result.reason}")
            skipped = True
            continue
        alerts.after_run(runtime, result)  # drift over the threshold
        figures = result.details or {}
        click.echo(f"{row:<{width}} {figures.get('census', 0):>9,} "
                   f"{figures.get('missing', 0):>8,} {figures.get('stale', 0):>6,} "
                   f"{figures.get('gone', 0):>6,} {figures.get('fetched', 0):>8,} "
                   f"{figures.get('deleted', 0):>8,} {result.api_requests:>8,}")
    return failures, skipped


@main.command()
@click.option("--resource", required=True, metavar="R", help="Resource to export.")
@click.option("--include-deleted", is_flag=True, help="Also records marked deleted.")
@one_feed_option
def export(resource: str, include_deleted: bool, feed_name: str | None) -> None:
    """Write the stored records of a resource to stdout as NDJSON."""
    from trestle_tasks.worker.runtime import LocalRuntime

    runtime = _runtime(LocalRuntime, require_credentials=False, reports_itself=True,
                       feed=feed_name)
    _check_resources(runtime.settings, (resource,))
    out = click.get_text_stream("stdout")
    count = runtime.store.export(resource, out, include_deleted=include_deleted)
    click.echo(f"exported {count:,} {resource} records", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many recent runs to show.")
@click.option("--live", is_flag=True,
              help="Also ask the feed how many records lie past each watermark (one "
                   "key-only $count request per resource; needs the credentials).")
@click.option("--feed", "feed_name", default=None, is_flag=False, flag_value="",
              metavar="NAME",
              help="The feed to report on (one of TRESTLE_FEEDS; default: every feed). "
                   "`--feed` without a name is the former spelling of --live.")
def status(as_json: bool, limit: int, live: bool, feed_name: str | None) -> None:
    """Recent runs, watermarks and quota use, of every feed (or --feed NAME)."""
    from trestle_tasks.cli.status import collect_status, database_not_created, render_status
    from trestle_tasks.store.probe import require_database
    from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

    if feed_name == "":  # `status --feed` as scripts wrote it before feeds had names
        click.echo("trestle-etl: note: `status --feed` is now `status --live`", err=True)
        live, feed_name = True, None
    feeds = _feed_settings(require_credentials=live, reports_itself=True, feed=feed_name)
    reports = {}
    for name, settings in feeds.items():
        # The quota shown is the cluster's (Redis); --live's own requests are made here.
        cluster = ClusterRuntime(settings)
        if (missing := database_not_created(settings)) is not None:
            # Connecting would create an empty SQLite file where nothing was configured.
            reports[name] = missing
            continue
        require_database(cluster.store.engine)
        reports[name] = collect_status(cluster, limit=limit,
                                       feed=LocalRuntime(settings) if live else None)
    if len(reports) == 1:  # one feed: the report as it always was
        report = next(iter(reports.values()))
        click.echo(json.dumps(report, indent=2, default=str) if as_json
                   else render_status(report))
    elif as_json:
        click.echo(json.dumps({"feeds": reports}, indent=2, default=str))
    else:
        click.echo("\n\n".join(f"== feed {name} ==\n{render_status(report)}"
                                for name, report in reports.items()))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=9464, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0 picks a free one).")
@feed_option
def metrics(host: str, port: int, feed_name: str | None) -> None:
    """Serve Prometheus metrics: sync lag, records, rejects, runs, quota and 429s.

    Read from the sync log and the shared quota limiter on each scrape, so one endpoint
    covers every worker of every feed; each series has a `feed` label.
    """
    from trestle_tasks.cli.metrics_http import start_metrics_server
    from trestle_tasks.worker.runtime import ClusterRuntime

    # One endpoint for every feed, each series labelled with its feed (--feed NAME: one).
    chosen = _feed_settings(require_credentials=False, feed=feed_name)
    server, thread = start_metrics_server(
        {name: ClusterRuntime(settings) for name, settings in chosen.items()}, host, port)
    click.echo(f"Serving metrics at http://{host}:{server.server_port}/metrics; Ctrl-C to "
               "stop.")
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()


@main.command()
@click.option("--records", default=2000, show_default=True, type=click.IntRange(10, 200_000),
              help="Listings the simulator serves.")
@click.option("--database", default="trestle-demo.sqlite3", show_default=True,
              type=click.Path(dir_okay=False),
              help="SQLite file to fill (replaced if an earlier demo made it; any other "
                   "existing file is refused).")
@click.option("--celery", "use_celery", is_flag=True,
              help="Sync through Celery worker processes started for the demo (needs Redis; "
                   "without it the demo stops with an error, it does not fall back).")
@click.option("--redis-url", envvar="REDIS_URL", default="redis://127.0.0.1:6379/0",
              show_default=True, metavar="URL",
              help="Redis for --celery (also read from REDIS_URL). Use a database no other "
                   "workers use: the demo refuses one with workers or queued tasks.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 4),
              help="Worker processes for --celery.")
@click.option("--feeds", default=1, show_default=True, type=click.IntRange(1, 4),
              help="MLS feeds the simulator serves (each its own credential and data, the "
                   "same listing keys), synced as a deployment of several feeds: one "
                   "database file per feed beside --database.")
def demo(records: int, database: str, use_celery: bool, redis_url: str, workers: int,
         feeds: int) -> None:
    """Sync the bundled simulator into an embedded database: no configuration needed.

    With --celery the syncs are dispatched to real `celery -A trestle_tasks worker`
    processes, as `sync --wait` does, and the workers are stopped at the end.
    """
    from pathlib import Path

    from trestle_tasks.cli.demo import SAMPLE_QUERY, SyncerFactory, local_syncer, run_demo
    from trestle_tasks.cli.progress import follow, progress
    from trestle_tasks.core.wording import count

    syncer: SyncerFactory = local_syncer
    if use_celery:
        from trestle_tasks.cli.demo_celery import celery_syncer, check_redis

        check_redis(redis_url)
        syncer = celery_syncer(redis_url, workers=workers,
                               on_stage=lambda text: click.echo(f"\n• {text}", err=True))
    with progress("records") as bar:
        report = run_demo(records=records, database=Path(database).resolve(), syncer=syncer,
                          feeds=feeds,
                          on_stage=lambda text: click.echo(f"\n• {text}", err=True),
                          on_progress=lambda done, total: follow(bar, done, total))
    several = feeds > 1
    click.echo("")
    _print_summary([(_row_name(r.resource, name if several else None), r.run,
                     r.skipped.reason if r.skipped else None)
                    for name, outcome in report.feeds.items() for r in outcome.full])
    for name, outcome in report.feeds.items():
        incremental = outcome.incremental.run if outcome.incremental else None
        if incremental is not None:
            click.echo(f"\n{f'Feed {name}: i' if several else 'I'}ncremental sync after "
                       f"changing {outcome.changed} listings: fetched "
                       f"{count(incremental.records_fetched, 'record')} with "
                       f"{count(incremental.api_requests, 'request')}.")
    quota = report.quota or {}
    served = sum(outcome.requests_served for outcome in report.feeds.values())
    click.echo(f"Requests served by the simulator: {served:,} (quota "
               f"{quota.get('minute_limit')}/minute, {quota.get('hour_limit')}/hour"
               f"{' per feed' if several else ''}); total time {report.seconds:.1f} s.")
    for name, outcome in report.feeds.items():
        click.echo(f"{f'Feed {name} database' if several else 'Database'}: "
                   f"{outcome.database}")
    click.echo(f"\nSample query:\n  {SAMPLE_QUERY}")
    for name, outcome in report.feeds.items():
        if several:
            click.echo(f"  feed {name}:")
        for row in outcome.sample:
            click.echo("  " + " | ".join(str(value) for value in row))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0 picks a free one).")
@click.option("--records", default=1000, show_default=True, type=click.IntRange(0),
              help="Number of Property records (related records are derived).")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Same seed, same records.")
@click.option("--metadata", "metadata_path", type=click.Path(exists=True, dir_okay=False),
              help="Serve this EDMX $metadata file and generate data following it.")
@click.option("--fill", type=click.Choice(["realistic", "max"]), default="realistic",
              show_default=True, help="'max' fills every field to its declared length.")
@click.option("--minute-quota", type=click.IntRange(0), default=280, show_default=True,
              help="Requests per credential per minute.")
@click.option("--hour-quota", type=click.IntRange(0), default=8400, show_default=True,
              help="Requests per credential per hour.")
@click.option("--prerender", is_flag=True,
              help="Generate every Property record before serving (benchmarks: pages cost "
                   "only their encoding; about 15 KB of memory per wide record).")
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Added latency per data request.")
@click.option("--media-max", "media_max_per_listing", type=click.IntRange(0, 99), default=20,
              show_default=True,
              help="Most Media rows a listing has (on average ~0.43 of it where a listing "
                   "has photos: 20 gives ~8.5 a listing, 64 ~25).")
@click.option("--compact-index", is_flag=True,
              help="Index Property and Media by ordinal, a few bytes a row instead of ~300 "
                   "(a feed of millions of listings; a write to Media through the control "
                   "API then costs the full index).")
@click.option("--feed", "feed_specs", multiple=True,
              metavar="NAME:CLIENT_ID:SECRET[:RECORDS[:SEED]]",
              help="Serve this feed to this credential (repeat for several feeds; repeat a NAME "
                   "for another credential of it). RECORDS defaults to --records, SEED to "
                   "--seed plus the feed's position; every feed's keys come from --seed, so "
                   "ListingKeys overlap across feeds. Without --feed: one feed, 'default'.")
def simulator(**options: Any) -> None:
    """Serve the bundled Trestle-compatible API.

    Accepts the credentials in TRESTLE_CLIENT_ID / TRESTLE_CLIENT_SECRET when both are
    set, otherwise client id `trestle-simulator` and secret `simulator-secret`. With
    --feed, each feed accepts only its own credentials (the variables are not read).
    """
    from trestle_simulator.config import SimulatorConfig
    from trestle_simulator.feed_spec import feeds_from_specs
    from trestle_simulator.server import serve

    latency = options.pop("latency_ms")
    feed_specs: tuple[str, ...] = options.pop("feed_specs")
    config_kwargs: dict[str, Any] = {**options, "latency_ms_per_request": latency}
    if feed_specs:
        try:
            config_kwargs["feeds"] = feeds_from_specs(feed_specs)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="'--feed'") from None
    else:
        client_id = os.environ.get("TRESTLE_CLIENT_ID")
        client_secret = os.environ.get("TRESTLE_CLIENT_SECRET")
        if client_id and client_secret:
            config_kwargs["credentials"] = {client_id: client_secret}
    try:
        config = SimulatorConfig(**config_kwargs)
    except ValueError as error:
        raise click.BadParameter(str(error),
                                 param_hint="'--feed'" if feed_specs else None) from None

    def announce(token_url: str, odata_root: str) -> None:
        click.echo(f"Token URL:  {token_url}")
        click.echo(f"OData root: {odata_root}")
        for name, feed in config.feed_settings().items():
            # Client ids only: a secret given on the command line is not printed back.
            ids = "client id" + ("s" if len(feed.credentials) > 1 else "")
            click.echo(f"Feed {name}: {ids} {', '.join(feed.credentials)}; "
                       f"{feed.records} Property records, seed {feed.seed}")
        serving = (f"{len(config.feeds)} feeds" if config.feeds
                   else f"{config.records} Property records")
        click.echo(f"Serving {serving}; Ctrl-C to stop.", err=True)

    try:
        serve(config, on_ready=announce)
    except ValueError as error:  # an unreadable metadata file, for instance
        raise FatalError(f"cannot start the simulator: {error}") from error
