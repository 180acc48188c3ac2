"""No secret, whatever its value, ever shows: not in any log line (every logger, DEBUG),
not in an exception's message, repr or traceback, not in the Celery task arguments a run
would send, not in the sync log, not in `status` or `status --json` — also when the run
fails (credentials refused, a server failing every data request, a database that does
not answer, a token endpoint whose error echoes the request).

The secrets (tests/secret_strategies.py) are realistic: 12 to 40 printable ASCII
characters mixing lower and upper case, digits and punctuation (`%`, `&`, `+`, `"`,
`\\`, `@` …), as a password policy asks. Short, single-class or word-like values turn
up in ordinary output by chance ("00000000" is part of a timestamp, "api_requests" a
column name), so their absence would prove nothing and their presence would not be a
leak; the redactor ignores very short values on purpose. Each secret is also looked
for in the forms it takes on its way: percent-encoded (a form body, a URL), JSON-escaped
(a JSON log line) and repr-escaped (an exception's repr); any of them is a leak.

Kept fast on purpose: a run is a local sync in this process of a tiny feed (a simulator
starts in about 20 ms, so each example gets its own, with the example's credentials),
the retry policy is shortened so failures come at once, and few examples run per
scenario (LEAK_EXAMPLES=100 for a longer hunt). Each scenario is its own test case, so
every kind of failure is always exercised.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings

from tests.integration.conftest import start_simulator
from tests.integration.sync_fixtures import settings_for
from tests.redis_space import redis_url
from tests.secret_strategies import leaked_forms, secrets
from trestle_tasks.cli.local import sync_local
from trestle_tasks.cli.status import collect_status, render_status
from trestle_tasks.core.logs import API_LOGGER, ContextFilter, JsonFormatter, redact
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

pytestmark = pytest.mark.integration
QUICK_RETRY = RetryPolicy(budget_s=0.3, base_delay_s=0.002, max_delay_s=0.02,
                          max_retry_after_s=0.02)
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/test"
# Names of this process's own: another run of the suite (or another pytest process) may
# create, grant and drop its own pair at the same time.
_OWN = uuid.uuid4().hex[:10]
DB_NAME, DB_USER = f"secret_leak_{_OWN}", f"leak_probe_{_OWN}"
SCENARIOS = ["succeeds", "credentials_refused", "server_fails", "database_down",
             "token_error_echoes_the_request"]
# Few by default (each example is a whole run); LEAK_EXAMPLES=100 for a longer hunt.
EXAMPLES = int(os.environ.get("LEAK_EXAMPLES", "4"))

class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def every_log_line() -> Iterator[Capture]:
    """Every logger at DEBUG (urllib3 and the request log included) into a Capture."""
    loggers = [logging.getLogger(), logging.getLogger("urllib3"), logging.getLogger(API_LOGGER)]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    capture = Capture()
    logging.getLogger().addHandler(capture)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.propagate = True
    try:
        yield capture
    finally:
        logging.getLogger().removeHandler(capture)
        for logger, level, propagate in saved:
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture(scope="module")
def mariadb() -> Iterator[sa.Engine]:
    """One database and one user for the module; each example sets the user's password."""
    engine = sa.create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP USER IF EXISTS '{DB_USER}'@'127.0.0.1'")
        conn.exec_driver_sql(f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY 'x'")
    yield engine
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
        conn.exec_driver_sql(f"DROP USER IF EXISTS '{DB_USER}'@'127.0.0.1'")
    engine.dispose()


class EchoingTokenEndpoint(BaseHTTPRequestHandler):
    """A token endpoint that fails and echoes the request in its error, as some servers
    and proxies do: the form as sent (the secret percent-encoded) and as parsed (the
    secret as is, JSON-escaped)."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        parsed = json.dumps(parse_qs(body))
        answer = json.dumps({"error": {"message": f"cannot handle {body} (parsed: {parsed})"}})
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echoing_token_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingTokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/token"
    server.shutdown()
    server.server_close()


def fresh_database(admin: sa.Engine, password: str) -> str:
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4")
        conn.exec_driver_sql(f"GRANT ALL ON `{DB_NAME}`.* TO '{DB_USER}'@'127.0.0.1'")
        # PyMySQL quotes the password client-side: any character is safe here.
        conn.exec_driver_sql(f"ALTER USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY %s",
                             (password,))
    return f"mysql+pymysql://{DB_USER}:{quote(password, safe='')}@127.0.0.1:3306/{DB_NAME}"


def dispose(url: str) -> None:
    for key, store in list(factory._per_process.items()):
        if key[1] == f"store:{url}":
            store.engine.dispose()
            factory._per_process.pop(key, None)


def celery_arguments(plans: list, results: list) -> str:
    """What tasks.py would send for these runs: the real signatures, as Celery encodes them."""
    from kombu.utils.json import dumps

    from trestle_tasks.worker.tasks import finalize_sync, plan_sync, sync_window_task

    sent = []
    for plan in plans:
        sent.append(plan_sync.s(plan.resource, plan.full, plan.run_id))
        sent.extend(sync_window_task.s(plan.header(), w.to_dict(), 1) for w in plan.windows)
        sent.append(finalize_sync.s(plan.run_id, plan.resource))
    outcomes = [(r.run.details or {}).get("windows", []) for r in results if r.run]
    return dumps([dict(s) for s in sent] + outcomes)


def sync_log_rows(config) -> str:
    tables = bookkeeping(None)
    engine = factory.store(config).engine
    if not sa.inspect(engine).has_table("etl_sync_log"):
        return ""  # the run failed before it could make the tables
    with engine.connect() as conn:
        rows = [dict(r) for name in ("etl_sync_log", "etl_sync_window", "etl_rejects")
                for r in conn.execute(sa.select(tables[name])).mappings()]
    return json.dumps(rows, default=str)


# No shrinking: each example is a whole run; a failure is reported as found (with its
# blob to replay), and the message names the secret, its form and where it showed.
@settings(max_examples=EXAMPLES, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(client_secret=secrets(), db_password=secrets(), redis_password=secrets())
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_shows_anywhere_in_a_run(mariadb, echoing_token_url, scenario, client_secret,
                                           db_password, redis_password):
    accepted = client_secret if scenario != "credentials_refused" else client_secret[::-1] + "!"
    sim = start_simulator(records=40, seed=7, credentials={"leak-client": accepted},
                          minute_quota=1000, hour_quota=10000)
    folder = tempfile.TemporaryDirectory()
    if scenario == "database_down":
        url = f"mysql+pymysql://{DB_USER}:{quote(db_password, safe='')}@127.0.0.1:1/{DB_NAME}"
    elif scenario in ("credentials_refused", "token_error_echoes_the_request"):
        url = f"sqlite:///{Path(folder.name) / 'leak.sqlite3'}"
    else:
        url = fresh_database(mariadb, db_password)
    config = settings_for(
        sim, url, TRESTLE_CLIENT_ID="leak-client", TRESTLE_CLIENT_SECRET=client_secret,
        LOCK_DIR=folder.name, SYNC_WINDOW_SIZE="100", TRESTLE_PAGE_SIZE="10",
        REDIS_URL=redis_url(password=redis_password),
        **({"TRESTLE_TOKEN_URL": echoing_token_url}
           if scenario == "token_error_echoes_the_request" else {}))
    # What every entry point does first (the CLI's and the worker's configure_logging).
    redact.add(config.secret_values())
    outputs: dict[str, str] = {}
    plans, results = [], []

    def on_plan(plan) -> None:
        plans.append(plan)
        if scenario == "server_fails":  # planning went through; every window fails
            sim.configure(rate_5xx=1.0, fault_seed=3)

    try:
        with every_log_line() as capture, \
                mock.patch.object(factory, "retry_policy", lambda _s: QUICK_RETRY):
            failures = []
            for resource in ("Property", "Office"):
                sim.configure(rate_5xx=0.0)
                try:
                    results += sync_local(LocalRuntime(config), [resource], on_plan=on_plan)
                except Exception as error:
                    failures.append("\n".join(
                        [str(error), repr(error), *traceback.format_exception(error)]))
            outputs["exception"] = "\n".join(failures)
            report = collect_status(ClusterRuntime(config))
            outputs["status"] = render_status(report)
            outputs["status --json"] = json.dumps(report, indent=2, default=str)
            if scenario != "database_down":
                outputs["sync log"] = sync_log_rows(config)
            outputs["celery arguments"] = celery_arguments(plans, results)
        outputs["log"] = "\n".join(capture.lines)
        check_the_scenario_happened(scenario, outputs, results)
        for name, secret in (("client secret", client_secret), ("database password",
                                                                 db_password),
                             ("redis password", redis_password)):
            for form in leaked_forms(secret):
                for where, text in outputs.items():
                    assert form not in text, f"the {name} ({form!r}) shows in the {where}"
    finally:
        dispose(url)
        sim.stop()
        folder.cleanup()


def check_the_scenario_happened(scenario: str, outputs: dict[str, str], results) -> None:
    """The failure each scenario stands for did happen (or the test would prove little)."""
    statuses = [r.run.status for r in results if r.run]
    if scenario == "succeeds":
        assert statuses == ["succeeded", "succeeded"]
    elif scenario == "server_fails":
        assert statuses == ["failed", "failed"]
        assert "HTTP 5" in outputs["sync log"]
    elif scenario == "credentials_refused":
        assert "credentials" in outputs["exception"]
    elif scenario == "token_error_echoes_the_request":
        assert "HTTP 500" in outputs["exception"] and "grant_type" in outputs["exception"]
    else:
        assert "OperationalError" in outputs["exception"]
