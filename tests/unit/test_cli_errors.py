"""The one line and the exit code for each kind of failure; progress bars that grow."""

from __future__ import annotations

import io

import click
import pymysql
import pytest
import sqlalchemy as sa

from trestle_tasks.cli.errors import EXIT_BAD_CONFIG, EXIT_FAILURE, describe
from trestle_tasks.cli.progress import QuietBar, follow, grow
from trestle_tasks.core.errors import BadCredentialsError, ConfigurationError


def db_error(orig: Exception) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT secret_column FROM t WHERE x = %s", ("v",), orig)


@pytest.mark.parametrize(("error", "message", "code"), [
    pytest.param(ConfigurationError("invalid settings: A; B"), "invalid settings: A; B",
                 EXIT_BAD_CONFIG, id="settings"),
    pytest.param(BadCredentialsError("rejected\n  the client credentials"),
                 "rejected the client credentials", EXIT_FAILURE, id="ours-one-line"),
    pytest.param(db_error(pymysql.err.OperationalError(1045, "Access denied for user 'u'")),
                 "database error: Access denied for user 'u' (MySQL error 1045)",
                 EXIT_FAILURE, id="mysql"),
    pytest.param(db_error(Exception('connection failed: FATAL:  database "x"\ndoes not exist')),
                 'database error: connection failed: FATAL: database "x" does not exist',
                 EXIT_FAILURE, id="postgresql"),
    pytest.param(FileNotFoundError(2, "No such file or directory", "/x/metadata.xml"),
                 "No such file or directory: /x/metadata.xml", EXIT_FAILURE, id="oserror"),
    pytest.param(KeyError("window"),
                 "unexpected KeyError: 'window' (rerun with --debug for the traceback)",
                 EXIT_FAILURE, id="bug"),
])
def test_describe(error, message, code):
    assert describe(error) == (message, code)


def test_a_database_error_never_shows_the_statement_or_its_parameters():
    message, _ = describe(db_error(pymysql.err.OperationalError(2003, "Can't connect")))
    assert "SELECT" not in message and "secret_column" not in message
    assert "Background on this error" not in message


def test_a_bar_that_grows_after_reaching_its_end_is_drawn_as_unfinished():
    out = io.StringIO()
    bar = click.progressbar(length=10, file=out)
    bar.update(10)
    assert bar.finished
    grow(bar, 30)
    assert (bar.length, bar.finished) == (40, False)
    follow(bar, 25, 40)
    assert bar.pos == 25 and not bar.finished


def test_follow_never_moves_backwards_and_never_below_done():
    bar = QuietBar(0)
    follow(bar, 5, 3)  # more done than expected so far: the length catches up
    assert (bar.pos, bar.length) == (5, 5)
    follow(bar, 4, 10)
    assert (bar.pos, bar.length) == (5, 10)
