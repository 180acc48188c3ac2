import pickle

import pytest

from trestle_tasks.core import errors
from trestle_tasks.store import dberrors

dberrors.teach_is_retriable()  # as every Store does when built

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


def test_building_a_store_teaches_is_retriable_database_errors_and_importing_does_not():
    """errors.py imports nothing above it; a Store registers how database errors are read
    when it is built (explicitly, not as a side effect of an import), before it can raise
    one: a process that built one retries a dropped database connection."""
    import subprocess
    import sys

    code = ("import pymysql, sqlalchemy.exc as e; from trestle_tasks.store.store import Store; "
            "from trestle_tasks.core.errors import is_retriable; "
            "lost = e.OperationalError('SELECT 1', {}, "
            "pymysql.err.OperationalError(2013, 'Lost connection')); "
            "print(is_retriable(lost)); Store.from_url('sqlite://'); print(is_retriable(lost))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.stdout.split() == ["False", "True"], done.stderr


@pytest.mark.parametrize(("error", "from_the_start"), [
    (errors.ReplicationLinkExpiredError("idle too long", status=400), True),
    (errors.ODataRequestError("bad filter", status=400), False),
    (errors.BadCredentialsError("no"), False),
    (TypeError("a bug"), False),
])
def test_an_expired_replication_link_is_cured_only_by_starting_over(error, from_the_start):
    assert errors.is_retriable(error) is False
    assert errors.is_retriable(error, from_the_start=True) is from_the_start
