"""Logs of a real sync: JSON lines carrying the run id, rotating files by type, no secrets."""

from __future__ import annotations

import json
import logging

import pytest

from trestle_tasks.cli.local import sync_local
from trestle_tasks.core.logs import API_LOGGER, configure_logging
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def restore_logging():
    root, api = logging.getLogger(), logging.getLogger(API_LOGGER)
    saved = (list(root.handlers), root.level, list(api.handlers), api.level, api.propagate)
    yield
    for logger in (root, api):
        for handler in list(logger.handlers):
            if getattr(handler, "_trestle_tasks", False):
                logger.removeHandler(handler)
                handler.close()
    root.handlers[:], root.level = saved[0], saved[1]
    api.handlers[:], api.level, api.propagate = saved[2], saved[3], saved[4]


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_sync_leaves_json_files_by_type_with_run_ids_and_no_secret(tmp_path, restore_logging):
    secret = "s3cr3t-for-the-log-test"
    sim = start_simulator(records=250, seed=3, credentials={"log-client": secret})
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), SYNC_WINDOW_SIZE="100")
        logs = tmp_path / "logs"
        configure_logging("INFO", "json", settings.secret_values(), logs)
        run = sync_local(LocalRuntime(settings), ["Property"])[0].run
        for handler in logging.getLogger().handlers + logging.getLogger(API_LOGGER).handlers:
            handler.flush()
        application = read_lines(logs / "application.log")
        api = read_lines(logs / "api.log")
        sync_lines = [line for line in application if line["logger"].startswith(
            "trestle_tasks.sync")]
        assert sync_lines and all(line["run_id"] == run.run_id for line in sync_lines)
        assert any("window w00000 done" in line["message"] for line in sync_lines)
        # A handful of INFO lines, not one per record or request.
        assert len(application) < 40
        assert len(api) == run.api_requests + 1  # + the $metadata read that made the tables
        assert all(line["logger"] == API_LOGGER for line in api)
        everything = "".join(p.read_text() for p in logs.iterdir())
        assert secret not in everything
        assert "Bearer" not in everything
    finally:
        sim.stop()
