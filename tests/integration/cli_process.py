"""Running `python -m trestle_tasks` in a subprocess as an operator would, for CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[2]
# Variables of ours the test machine's environment must not lend to the command.
OURS = ("TRESTLE_", "DATABASE_", "REDIS_", "CELERY_", "SYNC_", "LOCK_", "LOG_", "ALERT_",
        "DB_", "COST_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    # The package is found whether or not it was pip-installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def pointing_at(sim: Any, database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(**{"TRESTLE_CLIENT_ID": sim.client_id,
                        "TRESTLE_CLIENT_SECRET": sim.client_secret,
                        "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                        "DATABASE_URL": database_url, **extra})


def trestle_etl(*args: str, env: dict[str, str], cwd: Path,
                timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trestle_tasks", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def table_names(database_url: str) -> set[str]:
    engine = sa.create_engine(database_url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Non-zero exit, exactly one line on stderr, no traceback; returns that line."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trestle-etl: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
