"""The Celery application. Creating it connects to nothing; workers import the tasks."""

from __future__ import annotations

import importlib.util

from celery import Celery
from celery.signals import setup_logging

app = Celery("trestle_tasks", include=["trestle_tasks.worker.tasks"])
# The repository's celeryconfig.py when it can be imported (run from the checkout, or a
# deployment's own copy on the path); otherwise the same settings from the package.
_config = "celeryconfig" if importlib.util.find_spec("celeryconfig") else (
    "trestle_tasks.worker.celery_settings"
)
app.config_from_object(_config)
# Each worker announces its window slots, so runs are cut for the workers really there.
app.steps["worker"].add("trestle_tasks.worker.celery_steps:SlotRegistration")
app.steps["consumer"].add("trestle_tasks.worker.celery_steps:SlotAnnouncementOnConnect")


@setup_logging.connect
def _configure_logging(**_: object) -> None:
    """Our handlers (JSON lines, secrets redacted) instead of Celery's own."""
    from trestle_tasks.core.logs import configure_logging
    from trestle_tasks.core.settings import load_settings

    settings = load_settings(require_credentials=False)
    configure_logging(settings.log_level, settings.log_format, settings.secret_values(),
                      settings.log_dir)
