"""LOG_DIR written by several real processes at once: rotation loses no line, mixes none.

Two shapes, as deployments have them: a parent that configures logging and then forks
its pool (Celery prefork), and unrelated processes started separately on one host (a
worker, beat and a cron `sync --local` sharing LOG_DIR). The files are small here so that
they rotate dozens of times while the processes write.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from .cli_process import REPO_ROOT, clean_env

pytestmark = pytest.mark.integration

MAX_BYTES = 8_000
PROCESSES = 4
LINES = 300

# Configures logging exactly as the CLI and the workers do (configure_logging), with a
# small size limit and room for every backup, then writes LINES lines tagged with its pid.
WRITER = textwrap.dedent(f"""
    import logging, os, sys
    from trestle_tasks.core import logs

    logs.LOG_FILE_BYTES, logs.LOG_FILE_BACKUPS = {MAX_BYTES}, 500

    def write(tag):
        log = logging.getLogger("writer")
        for seq in range({LINES}):
            # Lines of unequal length, some longer than others, as real ones are.
            log.info("line %s", seq, extra={{"tag": tag, "seq": seq, "pad": "x" * (seq % 97)}})

    mode, folder = sys.argv[1], sys.argv[2]
    logs.configure_logging("INFO", "json", (), folder)
    if mode == "fork":
        children = []
        for n in range({PROCESSES}):
            pid = os.fork()
            if pid == 0:
                write(f"child{{n}}")
                os._exit(0)
            children.append(pid)
        for pid in children:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    else:
        write(sys.argv[3])
""")


def run_writer(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], env=clean_env(),
                            cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)


def written_lines(folder: Path, tags: list[str]) -> None:
    """Every line of every writer exactly once, each whole, no file over the limit."""
    files = sorted(folder.glob("application.log*"))
    files = [f for f in files if not f.name.endswith(".lock")]
    assert len(files) > 10, "the files should have rotated many times"
    seen: Counter[tuple[str, int]] = Counter()
    for path in files:
        text = path.read_text()
        assert len(text.encode()) <= MAX_BYTES, path.name
        for line in text.splitlines():
            record = json.loads(line)  # a mixed or cut line would not parse
            seen[(record["tag"], record["seq"])] += 1
    expected = {(tag, seq) for tag in tags for seq in range(LINES)}
    assert set(seen) == expected, f"lost: {len(expected - set(seen))}"
    assert max(seen.values()) == 1


def test_forked_pool_processes_rotate_together_without_losing_lines(tmp_path):
    process = run_writer("fork", str(tmp_path))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    written_lines(tmp_path, [f"child{n}" for n in range(PROCESSES)])


def test_separately_started_processes_share_one_folder(tmp_path):
    tags = [f"proc{n}" for n in range(PROCESSES)]
    processes = [run_writer("alone", str(tmp_path), tag) for tag in tags]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-2000:]
    written_lines(tmp_path, tags)
