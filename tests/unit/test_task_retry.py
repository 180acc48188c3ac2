"""Celery tasks retry on what errors.is_retriable calls retriable, after the RetryPolicy's
delay, at most max_retries times (worker/task_retry.py). Run eagerly (`apply`), so the
retries happen at once in this process; the countdowns asked for are recorded."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa
from celery import Celery

from trestle_tasks.core.errors import FatalError, NoProgressError, TransientServerError
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store import dberrors
from trestle_tasks.worker.task_retry import RetryingTask

POLICY = RetryPolicy(base_delay_s=10, max_delay_s=600)


def lost_connection() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {},
                                   pymysql.err.OperationalError(2013, "Lost connection"))


def failing_task(errors: list[BaseException], countdowns: list[float], **options):
    """A task that raises each of `errors` in turn, then returns how often it ran."""
    app = Celery("retry-test", set_as_current=False)
    calls = []

    class Recorded(RetryingTask):
        def retry(self, *args, **kwargs):
            countdowns.append(kwargs["countdown"])
            return super().retry(*args, **kwargs)

    @app.task(base=Recorded, retry_policy=POLICY, **options)
    def task() -> int:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return len(calls)

    return task


@pytest.mark.parametrize("error", [TransientServerError("503", status=503), lost_connection(),
                                   ConnectionResetError("reset")],
                         ids=["5xx", "database-connection-lost", "connection-reset"])
def test_a_retriable_error_is_retried_after_the_policy_s_delays(error):
    dberrors.teach_is_retriable()
    countdowns: list[float] = []
    task = failing_task([error, error], countdowns, max_retries=5)
    assert task.apply().get() == 3
    assert len(countdowns) == 2
    for attempt, countdown in enumerate(countdowns):
        ceiling = POLICY.backoff_ceiling(attempt)
        assert ceiling / 2 <= countdown <= ceiling


@pytest.mark.parametrize("error", [FatalError("bad settings"), KeyError("a bug")])
def test_a_fatal_error_or_a_bug_is_raised_at_once(error):
    countdowns: list[float] = []
    result = failing_task([error], countdowns, max_retries=5).apply()
    assert countdowns == [] and isinstance(result.result, type(error))


def test_an_excluded_retriable_error_is_not_retried():
    countdowns: list[float] = []
    task = failing_task([NoProgressError("no answer")], countdowns, max_retries=5,
                        not_retried_for=(NoProgressError,))
    assert isinstance(task.apply().result, NoProgressError) and countdowns == []


def test_after_max_retries_the_error_itself_is_raised():
    countdowns: list[float] = []
    error = TransientServerError("503", status=503)
    result = failing_task([error] * 5, countdowns, max_retries=2).apply()
    assert isinstance(result.result, TransientServerError) and len(countdowns) == 3
