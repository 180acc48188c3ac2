"""Turning any failure into the one line `trestle-etl` prints, and the exit code scripts read.

Our own errors carry a message written for operators, with no secret in it. Database
drivers raise SQLAlchemy errors whose text holds the statement, its parameters and a link:
only the server's own message is kept. Anything else is a bug, shown by its type and
message, with a pointer to `--debug` for the traceback. Text we did not write passes
through the log redactor first.
"""

from __future__ import annotations

from trestle_tasks.core.errors import ConfigurationError, TrestleTasksError

EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 2  # also click's code for usage errors
# Nothing ran because another run of the resource holds its lock: try again later.
EXIT_SKIPPED = 3
# Stopped by Ctrl-C (SIGINT): 128 + 2, what a shell reports for a program SIGINT ended.
EXIT_INTERRUPTED = 130


def one_line(text: str) -> str:
    return " ".join(text.split())


# `trestle-etl simulator` and `demo` run the bundled simulator, whose HTTP server is
# Werkzeug: the `simulator` extra, which a runtime install (the Docker image) leaves out.
SIMULATOR_MISSING = ("the simulator needs Werkzeug, which is not installed: "
                     "pip install 'trestle-tasks[simulator]'")


def describe(error: BaseException) -> tuple[str, int]:
    """(message, exit code) for an error that reached the command line."""
    if isinstance(error, ConfigurationError):
        return one_line(str(error)), EXIT_BAD_CONFIG
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == "werkzeug":
        return SIMULATOR_MISSING, EXIT_BAD_CONFIG
    if isinstance(error, TrestleTasksError):
        return one_line(str(error)) or type(error).__name__, EXIT_FAILURE
    if isinstance(error, OSError):
        text = error.strerror or str(error) or type(error).__name__
        if error.filename:
            text = f"{text}: {error.filename}"
        return one_line(text), EXIT_FAILURE
    from trestle_tasks.core.logs import redact

    database = _database_message(error)
    if database is not None:
        return redact(database), EXIT_FAILURE
    text = redact(one_line(str(error)))
    return (f"unexpected {type(error).__name__}{': ' + text if text else ''} "
            "(rerun with --debug for the traceback)"), EXIT_FAILURE


def _database_message(error: BaseException) -> str | None:
    """The driver's own words for a SQLAlchemy error, without statement or parameters."""
    if not type(error).__module__.startswith("sqlalchemy"):
        return None
    orig = getattr(error, "orig", None)
    if orig is None:
        return f"database error: {one_line(str(error).split('(Background on')[0])}"
    args: tuple[object, ...] = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL: (errno, message)
        return f"database error: {one_line(str(args[1]))} (MySQL error {args[0]})"
    return f"database error: {one_line(str(orig))}"
