"""The small things a user notices: counts in English, the quota runway, no empty progress
bar, and the demo's hints naming the demo's own database."""

from __future__ import annotations

import io

import pytest

from trestle_tasks.cli import progress as cli_progress
from trestle_tasks.cli.status import render_status
from trestle_tasks.core.errors import FatalError
from trestle_tasks.core.wording import count


@pytest.mark.parametrize(("number", "expected"), [
    (0, "0 requests"), (1, "1 request"), (2, "2 requests"), (4410, "4,410 requests")])
def test_counts_agree_with_their_noun(number, expected):
    assert count(number, "request") == expected
    assert count(1, "retry", "retries") == "1 retry"
    assert count(3, "retry", "retries") == "3 retries"


def status_with_runway(minutes: float) -> str:
    usage = {"last_10_minutes": 10, "last_hour": 60, "last_day": 100,
             "gigabytes_last_day": 0.0, "minutes_until_hour_quota_runs_out": minutes,
             "estimated_cost_last_day": None}
    return render_status({"database": "sqlite:///x", "runs": [], "watermarks": {},
                          "usage": usage})


def test_an_hour_quota_that_outlasts_the_hour_does_not_run_out():
    assert "lasts the hour" in status_with_runway(4410)
    assert "runs out" not in status_with_runway(4410)
    assert "runs out in 25 min" in status_with_runway(25)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_empty_progress_bar_before_there_is_work(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(cli_progress.sys, "stderr", terminal)
    with cli_progress.progress("records") as bar:
        assert terminal.getvalue() == ""  # the first stage's message comes first
        cli_progress.grow(bar, 200)
        bar.update(50)
        assert "50/200" in terminal.getvalue()
    assert "0/0" not in terminal.getvalue()


def test_the_demo_hint_names_the_demo_database(monkeypatch):
    from trestle_tasks.cli import demo_celery
    from trestle_tasks.worker import dispatch, factory

    def never_finishes(*_args, **_kwargs):
        raise FatalError("still running after 600 s: Property (run r1); see "
                         "`trestle-etl status`")

    monkeypatch.setattr(dispatch, "dispatch", lambda *_a, **_k: object())
    monkeypatch.setattr(dispatch, "wait", never_finishes)
    monkeypatch.setattr(factory, "store", lambda _settings: object())
    environ = {"DATABASE_URL": "sqlite:////tmp/demo.sqlite3", "TRESTLE_CLIENT_ID": "demo",
               "TRESTLE_CLIENT_SECRET": "demo-secret"}
    syncer = demo_celery.CelerySyncer(environ, 600)
    with pytest.raises(FatalError) as caught:
        syncer.sync(["Property"])
    assert "`DATABASE_URL=sqlite:////tmp/demo.sqlite3 trestle-etl status`" in str(caught.value)
