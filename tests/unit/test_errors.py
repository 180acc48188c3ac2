import pickle

import pytest

from trestle_tasks.core import errors
from trestle_tasks.store import dberrors  # noqa: F401  (it registers how database errors retry)

ALL = [
    cls for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.TrestleTasksError)
]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_survives_pickling_with_its_details(cls):
    error = cls("boom at https://h/x", status=503, url="https://h/x", retry_after=2.5)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is cls
    assert str(clone) == "boom at https://h/x"
    assert clone.details == error.details


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_is_either_retriable_or_fatal(cls):
    if cls in (errors.TrestleTasksError, errors.HTTPStatusError):
        return
    assert issubclass(cls, errors.RetriableError) != issubclass(cls, errors.FatalError)
    assert cls.retriable == issubclass(cls, errors.RetriableError)


def test_mysql_says_whether_a_password_was_sent_and_that_is_kept():
    from trestle_tasks.core.logs import redact

    message = "(1045, \"Access denied for user 'etl'@'localhost' (using password: YES)\")"
    assert redact(message) == message
    assert redact("password: YESsecret") == "password: ********"


def _db_error(code: int, message: str):
    import pymysql
    import sqlalchemy as sa

    return sa.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, message))


@pytest.mark.parametrize(("error", "retriable"), [
    pytest.param(TypeError("unsupported operand"), False, id="TypeError-is-a-bug"),
    pytest.param(KeyError("ListingKey"), False, id="KeyError-is-a-bug"),
    pytest.param(ValueError("bad"), False, id="ValueError-is-a-bug"),
    pytest.param(errors.TransientServerError("503", status=503), True, id="5xx"),
    pytest.param(errors.RetriesExhaustedError("gave up"), True, id="retries-exhausted"),
    pytest.param(errors.ODataRequestError("400", status=400), False, id="400"),
    pytest.param(errors.BadCredentialsError("no"), False, id="bad-credentials"),
    pytest.param(ConnectionResetError(), True, id="connection-reset"),
    pytest.param(_db_error(2003, "Can't connect to MySQL server"), True, id="db-down"),
    pytest.param(_db_error(1213, "Deadlock found"), True, id="deadlock"),
    pytest.param(_db_error(1146, "Table 'x' doesn't exist"), False, id="no-table"),
])
def test_one_place_decides_what_is_retriable(error, retriable):
    assert errors.is_retriable(error) is retriable


def test_redis_and_broker_outages_are_transient():
    import kombu.exceptions
    import redis.exceptions

    assert errors.is_retriable(redis.exceptions.ConnectionError("Connection refused"))
    assert errors.is_retriable(redis.exceptions.BusyLoadingError("loading"))
    assert errors.is_retriable(kombu.exceptions.OperationalError("broker down"))
    assert not errors.is_retriable(redis.exceptions.ResponseError("WRONGTYPE"))


def test_importing_any_part_of_the_store_registers_how_database_errors_are_read():
    """errors.py imports nothing above it; the store registers its reading on import, so a
    process that only made an engine still retries a dropped database connection."""
    import subprocess
    import sys

    code = ("import pymysql, sqlalchemy.exc as e; import trestle_tasks.store.engine; "
            "from trestle_tasks.core.errors import is_retriable; "
            "print(is_retriable(e.OperationalError('SELECT 1', {}, "
            "pymysql.err.OperationalError(2013, 'Lost connection'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip() == "True", done.stderr
