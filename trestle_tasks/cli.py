"""`trestle-etl`: the operator's command line (also `python -m trestle_tasks`).

Every command exits 0 on success and non-zero with a one-line reason on stderr otherwise;
`--debug` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from trestle_tasks.errors import ConfigurationError, FatalError, TrestleTasksError

EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 2


class _Group(click.Group):
    """Turns expected failures into one clear line and an exit code scripts can trust."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except ConfigurationError as error:
            _fail(ctx, error, EXIT_BAD_CONFIG)
        except (TrestleTasksError, OSError) as error:
            _fail(ctx, error, EXIT_FAILURE)


def _fail(ctx: click.Context, error: BaseException, code: int) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exception(error, file=sys.stderr)
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    if isinstance(error, OSError) and error.filename:
        text = f"{text}: {error.filename}"
    message = " ".join(text.split()) or type(error).__name__
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


@main.command("check-config")
def check_config() -> None:
    """Validate settings and check that Trestle, the database and Redis answer."""
    from trestle_tasks.health import run_checks
    from trestle_tasks.logs import configure_logging
    from trestle_tasks.settings import load_settings

    settings = load_settings(require_credentials=False)
    configure_logging("WARNING", settings.log_format, settings.secret_values())
    click.echo("Settings:")
    for name, value in settings.masked().items():
        click.echo(f"  {name:<24} {value}")
    click.echo("Checks:")
    failures = 0
    for check in run_checks(settings):
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"  {mark} {check.name:<16} {check.detail}")
        failures += not check.ok
    if failures:
        raise FatalError(f"{failures} check(s) failed")


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
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Added latency per data request.")
def simulator(**options: Any) -> None:
    """Serve the bundled Trestle-compatible API.

    Accepts the credentials in TRESTLE_CLIENT_ID / TRESTLE_CLIENT_SECRET when both are
    set, otherwise client id `trestle-simulator` and secret `simulator-secret`.
    """
    from trestle_tasks.simulator.config import SimulatorConfig
    from trestle_tasks.simulator.server import serve

    latency = options.pop("latency_ms")
    config_kwargs: dict[str, Any] = {**options, "latency_ms_per_request": latency}
    client_id = os.environ.get("TRESTLE_CLIENT_ID")
    client_secret = os.environ.get("TRESTLE_CLIENT_SECRET")
    if client_id and client_secret:
        config_kwargs["credentials"] = {client_id: client_secret}
    try:
        config = SimulatorConfig(**config_kwargs)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None

    def announce(token_url: str, odata_root: str) -> None:
        click.echo(f"Token URL:  {token_url}")
        click.echo(f"OData root: {odata_root}")
        click.echo(f"Serving {config.records} Property records; Ctrl-C to stop.", err=True)

    try:
        serve(config, on_ready=announce)
    except ValueError as error:  # an unreadable metadata file, for instance
        raise FatalError(f"cannot start the simulator: {error}") from error
