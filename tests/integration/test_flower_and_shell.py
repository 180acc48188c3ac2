"""Two of the ways README.md says the project is used, run as documented: Flower (the
command that serves its pages and API) and dispatching from a Python shell."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from tests.redis_space import redis_url

from .cli_process import REPO_ROOT, clean_env
from .conftest import start_simulator

pytestmark = pytest.mark.integration
# The README's front page and the page it sends Celery users to.
README = (REPO_ROOT / "README.md").read_text() + (REPO_ROOT / "docs" / "running.md").read_text()
# The tests' Celery database (tests/redis_space.py): the worker below takes whatever is
# queued there, so the tests below have it to themselves (the celery_redis fixture).
SHELL_REDIS_URL = redis_url("celery")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


def test_flower_as_the_readme_runs_it_serves_pages_and_api_behind_basic_auth(celery_redis,
                                                                             tmp_path):
    documented = ("FLOWER_BASIC_AUTH=user:password "
                  "celery -A trestle_tasks flower --address=127.0.0.1")
    assert documented in README
    assert "flower --address=127.0.0.1 --basic-auth" not in README  # `ps` would show it
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "flower", "--address=127.0.0.1",
         f"--port={port}"],
        env=clean_env(REDIS_URL=SHELL_REDIS_URL, FLOWER_BASIC_AUTH="ops:Flower-Pw-5531"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthcheck")
        # What `ps` shows any user of the machine: the password is not there.
        assert b"Flower-Pw-5531" not in Path(f"/proc/{flower.pid}/cmdline").read_bytes()
        login = ("ops", "Flower-Pw-5531")
        for page in ("/", "/tasks", "/api/workers", "/api/tasks"):
            assert requests.get(base + page, auth=login, timeout=10).status_code == 200, page
            assert requests.get(base + page, timeout=10).status_code == 401, page
        # Flower 2 has no /dashboard (the README says so); the health check needs no login.
        assert requests.get(f"{base}/dashboard", auth=login, timeout=10).status_code == 404
        assert requests.get(f"{base}/healthcheck", timeout=10).text == "OK"
    finally:
        stop(flower)


# The README's Python-shell example, run as a script (the REPL lines, in order).
SHELL_SESSION = textwrap.dedent("""
    import json, time
    from trestle_tasks.worker.tasks import plan_sync
    result = plan_sync.delay("Property")
    plan = result.get(timeout=120)
    from trestle_tasks.worker import factory
    from trestle_tasks.core.settings import load_settings
    store = factory.store(load_settings())
    run = store.sync_log.get_run(plan["run_id"], "Property")
    while run.status == "running":
        time.sleep(1)
        run = store.sync_log.get_run(plan["run_id"], "Property")
    print(json.dumps({"plan": plan, "status": run.status, "fetched": run.records_fetched}))
""")


def test_dispatching_from_a_python_shell_as_documented(celery_redis, tmp_path):
    for line in ('plan_sync.delay("Property")', "result.get(timeout=", "store.sync_log.get_run("):
        assert line in README, line
    sim = start_simulator(records=150, seed=21)
    env = clean_env(TRESTLE_CLIENT_ID=sim.client_id, TRESTLE_CLIENT_SECRET=sim.client_secret,
                    TRESTLE_TOKEN_URL=sim.token_url, TRESTLE_BASE_URL=sim.odata_root,
                    DATABASE_URL=f"sqlite:///{tmp_path / 'shell.sqlite3'}",
                    REDIS_URL=SHELL_REDIS_URL, TRESTLE_RESOURCES="Property")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker", "-c", "2",
         "-n", "shell@%h", "--without-gossip", "--without-mingle"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        session = subprocess.run([sys.executable, "-c", SHELL_SESSION], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=240, check=False)
        assert session.returncode == 0, session.stderr[-2000:]
        import json

        outcome = json.loads(session.stdout.strip().splitlines()[-1])
        assert outcome["plan"]["status"] == "planned"
        assert outcome["status"] == "succeeded"
        assert outcome["fetched"] == 150
    finally:
        stop(worker)
        sim.stop()


def test_this_module_runs_from_the_repository():
    assert Path(__file__).resolve().is_relative_to(REPO_ROOT)
