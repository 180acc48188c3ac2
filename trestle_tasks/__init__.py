"""Replicate a Trestle (RESO Web API) feed into your own database, run as a Celery task queue.

Importing this package connects to nothing: settings are read and clients are built only
when a command or a task asks for them.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `celery -A trestle_tasks` looks for `app`; build it only when asked for.
    if name in ("app", "celery"):
        from trestle_tasks.worker.celery_app import app

        return app
    raise AttributeError(f"module 'trestle_tasks' has no attribute {name!r}")
