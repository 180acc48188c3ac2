"""The Celery tasks' own retries, decided as everything else is: errors.is_retriable says
whether, a RetryPolicy says when.

Celery's `autoretry_for` takes exception classes, which is a second vocabulary: a dropped
database connection (an SQLAlchemy error, retriable by its driver code) or Redis going away
would not be retried, and the delays would follow Celery's backoff formula rather than
ours. A task made with `base=RetryingTask` and a `retry_policy` is retried on exactly what
is_retriable calls retriable (less `not_retried_for`), after `retry_policy.delay(n)`, at
most `max_retries` times; then the error is raised as it was.
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Retry

from trestle_tasks.core.errors import is_retriable
from trestle_tasks.core.retry import RetryPolicy


class RetryingTask(Task):
    abstract = True
    retry_policy: ClassVar[RetryPolicy | None] = None
    # Retriable errors this task still does not retry at once (NoProgressError: a whole
    # budget already went by without an answer).
    not_retried_for: ClassVar[tuple[type[BaseException], ...]] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Retry:
            raise
        except Exception as error:
            policy = self.retry_policy
            if (policy is None or not is_retriable(error)
                    or isinstance(error, self.not_retried_for)):
                raise
            raise self.retry(exc=error, countdown=policy.delay(self.request.retries)) from error
