# The runtime image: the program and its runtime dependencies only (no test tooling:
# that is requirements-dev.txt; no simulator: that is the `simulator` target below). Only
# what the program needs is copied in, by name, so nothing from the build context (.env,
# .git, databases, caches) can reach a layer; .dockerignore keeps those out of the build
# context as well.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md celeryconfig.py ./
COPY trestle_tasks ./trestle_tasks
# The simulator's code (small); its HTTP server, Werkzeug, only in the `simulator` target.
COPY trestle_simulator ./trestle_simulator
RUN pip install --no-cache-dir --no-deps -e .

# Workers and beat run as an unprivileged user (owning /app: `demo` and a SQLite
# DATABASE_URL write their file to the working directory).
RUN useradd --create-home trestle && chown -R trestle /app
USER trestle
ENTRYPOINT ["trestle-etl"]
CMD ["--help"]

# `--target simulator` (docker-compose.simulator.yml): the runtime image plus the bundled
# Trestle simulator's HTTP server (the `simulator` extra), for `trestle-etl simulator`.
FROM base AS simulator
USER root
COPY requirements-simulator.txt .
RUN pip install --no-cache-dir -r requirements-simulator.txt
USER trestle

# The default target (`docker build .`, docker-compose.yml): the runtime image as it is.
FROM base AS runtime
