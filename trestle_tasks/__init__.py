"""Replicate a Trestle (RESO Web API) feed into your own database, run as a Celery task queue.

Importing this package connects to nothing: settings are read and clients are built only
when a command or a task asks for them.
"""

__version__ = "0.1.0"
