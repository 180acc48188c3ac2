"""Alert cooldown files cannot be planted by another user of the machine (issue 22, item 5).

Before: one file per alert key, with a predictable name, straight in the shared temp dir
(or LOCK_DIR), opened without O_NOFOLLOW. A symlink planted under that name made the next
alert truncate and overwrite whatever it pointed at; a file planted there with an expiry
far ahead silenced that alert for good. Now the files live in a private folder (0700, the
user's own) and are never opened through a symlink.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trestle_tasks.monitoring.alerts.cooldown import FileCooldown, private_folder

KEY = "run_failed:Property"


def _predictable(shared: Path, key: str) -> Path:
    """Where the old code put a key's file: anyone could compute it."""
    return shared / f"trestle-etl-alert-{hashlib.sha256(key.encode()).hexdigest()[:24]}.cooldown"


@settings(max_examples=25, deadline=None)
@given(key=st.text(min_size=1, max_size=40))
def test_a_planted_symlink_is_never_written_through(tmp_path_factory: pytest.TempPathFactory,
                                                    key: str) -> None:
    shared = tmp_path_factory.mktemp("shared")
    victim = tmp_path_factory.mktemp("victim") / "precious.txt"
    victim.write_text("do not truncate me")
    _predictable(shared, key).symlink_to(victim)
    cooldown = FileCooldown(shared)
    token = cooldown.claim(key, 300)
    assert token is not None
    cooldown.release(key, token)
    assert victim.read_text() == "do not truncate me"


def test_a_planted_file_does_not_silence_an_alert(tmp_path: Path) -> None:
    _predictable(tmp_path, KEY).write_text(f"{4e9:.3f} planted")  # "cooling down" until 2096
    assert FileCooldown(tmp_path).claim(KEY, 300) is not None


def test_the_cooldown_folder_is_private_and_still_shared_by_this_users_runs(
        tmp_path: Path) -> None:
    first = FileCooldown(tmp_path)
    assert first.claim(KEY, 300) is not None
    assert FileCooldown(tmp_path).claim(KEY, 300) is None  # the next cron run: still cooling
    folder = tmp_path / f"trestle-etl-alerts-{os.geteuid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in folder.iterdir())


@pytest.mark.parametrize("planted", ["open folder", "symlinked folder"])
def test_a_planted_cooldown_folder_is_not_used(tmp_path: Path, planted: str) -> None:
    """Someone made the private folder's name first: alerts go out (kept per process),
    and nothing is written into, or through, what they made."""
    folder = tmp_path / f"trestle-etl-alerts-{os.geteuid()}"
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    if planted == "open folder":
        folder.mkdir()
        folder.chmod(0o777)
    else:
        folder.symlink_to(elsewhere)
    assert private_folder(tmp_path) is None
    cooldown = FileCooldown(tmp_path)
    assert cooldown.claim(KEY, 300) is not None
    assert cooldown.claim(KEY, 300) is None  # still a cooldown, in this process
    assert list(elsewhere.iterdir()) == []
    if planted == "open folder":
        assert list(folder.iterdir()) == []
