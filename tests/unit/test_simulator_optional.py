"""Werkzeug and the simulator are the `simulator` extra, not part of the runtime install.

The pipeline (every module but the simulator and the demo) imports neither, so a runtime
install (the Docker image) runs it; `trestle-etl demo` and `trestle-etl simulator`
without Werkzeug stop with one line that says how to install it. Each check runs in a
fresh interpreter with Werkzeug blocked (`sys.modules["werkzeug"] = None` makes every
import of it fail, as if it were not installed).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOCK = "import sys\nsys.modules['werkzeug'] = None\n"
NOT_PIPELINE = ("trestle_simulator", "trestle_tasks.cli.demo", "trestle_tasks.__main__")


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)


def pipeline_modules() -> list[str]:
    names = []
    for path in sorted((REPO_ROOT / "trestle_tasks").rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(NOT_PIPELINE):
            names.append(name)
    return names


def test_the_cli_and_the_tasks_import_without_werkzeug():
    result = run_blocked("""
        import trestle_tasks.cli.commands, trestle_tasks.worker.tasks
        loaded = sorted(m for m in sys.modules if m.startswith("trestle_simulator"))
        assert not loaded, loaded
    """)
    assert result.returncode == 0, result.stderr


def test_no_pipeline_module_imports_the_simulator_or_werkzeug():
    names = pipeline_modules()
    assert "trestle_tasks.store.loader" in names and "trestle_tasks.cli.commands" in names
    result = run_blocked(f"""
        import importlib
        for name in {names!r}:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.startswith("trestle_simulator"))
        assert not loaded, loaded
    """)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", [["demo"], ["simulator", "--port", "0"]])
def test_the_simulator_commands_without_werkzeug_say_how_to_install_it(command):
    result = run_blocked(f"""
        from trestle_tasks.cli.commands import main
        main({command!r}, prog_name="trestle-etl")
    """)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trestle-etl: error: ")
    assert "pip install 'trestle-tasks[simulator]'" in lines[0]
    assert result.stdout == ""
