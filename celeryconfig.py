"""Celery settings for `celery -A trestle_tasks …`, read from the environment (.env too).

Everything is defined in trestle_tasks/worker/celery_settings.py; override a setting here.
"""

from trestle_tasks.worker.celery_settings import *  # noqa: F403
