"""The commands (`trestle-etl`, `python -m trestle_tasks`): the click group in
commands.py, and what only commands use: status, the demo, health and metrics servers,
preflight checks, the local (Celery-less) runner."""
