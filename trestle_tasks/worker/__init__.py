"""The Celery layer: the app, its settings and steps, the tasks (thin: each builds its
services and calls sync/), the runtime they share, and dispatching from a shell."""
