import pickle

import pytest

from trestle_tasks import errors

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
    from trestle_tasks.logs import redact

    message = "(1045, \"Access denied for user 'etl'@'localhost' (using password: YES)\")"
    assert redact(message) == message
    assert redact("password: YESsecret") == "password: ********"
