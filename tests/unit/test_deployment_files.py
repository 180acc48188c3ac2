"""The deployment files as users need them, read and checked here (this machine has no
Docker engine and no `docker compose config`; tests/integration/test_compose_schema.py
checks the compose files against the Compose schema)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
SIMULATOR_COMPOSE = REPO_ROOT / "docker-compose.simulator.yml"
DEV_TOOLS = {"pytest", "pytest-timeout", "hypothesis", "ruff", "aiosmtpd", "pyinstrument",
             "jsonschema", "pyyaml"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def merged(base: dict, override: dict) -> dict:
    """Compose's merge of an override file, for the keys used here: mappings merge key by
    key, anything else is replaced."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def test_compose_file_has_every_service_with_health_and_safe_flower():
    compose = load(COMPOSE)
    services = compose["services"]
    assert {"redis", "mysql", "worker", "beat", "flower", "migrate", "metrics"} <= set(services)
    for name in ("redis", "mysql", "worker", "flower", "metrics"):
        assert "healthcheck" in services[name], name
    for name in ("redis", "mysql", "worker", "beat", "flower", "metrics"):
        assert services[name]["restart"] == "unless-stopped", name
    assert "mysql-data" in compose["volumes"]
    assert services["mysql"]["image"].startswith("mysql:8")
    flower = services["flower"]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])
    # The login from the environment (Flower reads it), never on the command line (`ps`).
    assert not any("basic-auth" in part or "BASIC_AUTH" in part for part in flower["entrypoint"])
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    for name in ("worker", "beat", "flower", "metrics"):
        assert services[name]["env_file"] == [".env"]
        assert "SECRET" not in str(services[name].get("environment", {}))


def test_the_metrics_service_serves_on_loopback_and_the_compose_network():
    metrics = load(COMPOSE)["services"]["metrics"]
    command = metrics["command"]
    assert command[0] == "metrics"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable as metrics:9464
    port = command[command.index("--port") + 1]
    assert metrics["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f":{port}/metrics" in " ".join(metrics["healthcheck"]["test"])


def healthchecks(compose: dict) -> dict[str, list[str]]:
    return {name: service["healthcheck"]["test"]
            for name, service in compose["services"].items() if "healthcheck" in service}


@pytest.mark.parametrize("path", [COMPOSE, SIMULATOR_COMPOSE], ids=lambda p: p.name)
def test_no_exec_form_healthcheck_relies_on_a_shell(path):
    """Exec form (`CMD`) runs no shell: a `$VAR` in it reaches the program as text."""
    for name, test in healthchecks(load(path)).items():
        if test[0] == "CMD":
            assert not any("$" in part for part in test[1:]), name


def test_the_worker_healthcheck_pings_this_containers_own_node(tmp_path):
    """Run the healthcheck as Docker would (compose turns `$$` into `$`, then `sh -c`),
    with a stand-in `celery` that prints its arguments, on a host named like a container."""
    test = load(COMPOSE)["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = test[1].replace("$$", "$")
    fake = tmp_path / "celery"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOSTNAME": "3f2a9c1d7e6b"}
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                            check=True)
    arguments = result.stdout.splitlines()
    assert arguments[:4] == ["-A", "trestle_tasks", "inspect", "ping"]
    # The node a worker started with no -n has: celery@<hostname>.
    assert arguments[arguments.index("-d") + 1] == "celery@3f2a9c1d7e6b"


def strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in strings(key) + strings(value)]
    if isinstance(node, list):
        return [text for item in node for text in strings(item)]
    return [node] if isinstance(node, str) else []


def compose_variables(path: Path) -> set[str]:
    """Variables compose interpolates from the environment or .env (`$$` is a literal $)."""
    text = "\n".join(strings(load(path))).replace("$$", "")
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def env_example_names() -> set[str]:
    names = set()
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#?([A-Z_][A-Z0-9_]*)=", line.strip())
        if match:
            names.add(match.group(1))
    return names


def test_env_example_names_every_variable_compose_reads():
    used = compose_variables(COMPOSE) | compose_variables(SIMULATOR_COMPOSE)
    assert {"FLOWER_BASIC_AUTH", "MYSQL_PASSWORD"} <= used
    assert used - env_example_names() == set()


def test_the_simulator_file_makes_migrate_wait_for_the_simulator():
    model = merged(load(COMPOSE), load(SIMULATOR_COMPOSE))
    services = model["services"]
    assert "healthcheck" in services["simulator"]
    assert services["migrate"]["depends_on"]["simulator"] == {"condition": "service_healthy"}
    # Still waits for the databases as well (the override adds, it does not replace).
    assert {"redis", "mysql"} <= set(services["migrate"]["depends_on"])
    port = services["simulator"]["command"][services["simulator"]["command"].index("--port") + 1]
    for name, service in services.items():
        if service.get("image", "").startswith("trestle-tasks") and name != "simulator":
            environment = service["environment"]
            assert environment["TRESTLE_BASE_URL"] == f"http://simulator:{port}/trestle/odata"
            assert environment["TRESTLE_CLIENT_ID"] == \
                services["simulator"]["environment"]["TRESTLE_CLIENT_ID"]


# --- packaging ---------------------------------------------------------------------------

def requirement_names(path: Path) -> set[str]:
    """Distribution names in a requirements file, following `-r` includes."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
            continue
        names.add(re.split(r"[\[=<>~!; ]", line)[0].lower().replace("_", "-"))
    return names


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def dist_names(specs: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~!; ]", spec)[0].lower().replace("_", "-") for spec in specs}


def test_runtime_requirements_hold_no_test_tooling():
    runtime = requirement_names(REPO_ROOT / "requirements.txt")
    assert runtime & DEV_TOOLS == set()
    assert {"cryptography", "psycopg", "celery", "flower"} <= runtime
    assert requirement_names(REPO_ROOT / "requirements-dev.txt") >= DEV_TOOLS
    assert runtime <= requirement_names(REPO_ROOT / "requirements-dev.txt")


def test_pyproject_declares_runtime_and_extras_apart():
    project = pyproject()["project"]
    runtime = dist_names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert runtime & DEV_TOOLS == set()
    assert "cryptography" in runtime
    assert dist_names(extras["postgres"]) == {"psycopg"}
    assert dist_names(extras["dev"]) >= DEV_TOOLS
    # Every pinned runtime requirement is declared by the package (or one of its extras),
    # so `pip install trestle-tasks[postgres,flower]` gets what requirements.txt pins.
    declared = runtime | dist_names(extras["postgres"]) | dist_names(extras["flower"]) | {
        "kombu"}  # celery's own dependency, pinned to match it
    assert requirement_names(REPO_ROOT / "requirements.txt") <= declared


def test_the_simulator_is_an_extra_the_runtime_leaves_out():
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    assert "werkzeug" not in dist_names(project["dependencies"])
    assert "werkzeug" not in requirement_names(REPO_ROOT / "requirements.txt")
    assert dist_names(extras["simulator"]) == {"werkzeug"}
    assert requirement_names(REPO_ROOT / "requirements-simulator.txt") == {"werkzeug"}
    # The tests run the simulator: the dev requirements and the dev extra install it.
    assert "werkzeug" in requirement_names(REPO_ROOT / "requirements-dev.txt")
    assert "werkzeug" in dist_names(extras["dev"])


def test_the_test_script_installs_the_dev_tooling():
    install = [line for line in (REPO_ROOT / "scripts" / "test").read_text().splitlines()
               if "pip install" in line and " -r " in line]
    assert install and all("requirements-dev.txt" in line for line in install)


def dockerfile_instructions() -> list[list[str]]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def dockerfile_targets() -> dict[str, list[list[str]]]:
    """Each build target's instructions, those of the stages it is built FROM first; "" is
    the default target (the last stage: what `docker build .` builds)."""
    targets: dict[str, list[list[str]]] = {}
    for words in dockerfile_instructions():
        if words[0] == "FROM":
            current = list(targets.get(words[1], []))
            targets[words[3] if len(words) > 3 and words[2].upper() == "AS" else ""] = current
            targets[""] = current
        current.append(words)
    return targets


def installed_requirements(instructions: list[list[str]]) -> tuple[list[str], str]:
    runs = " ".join(" ".join(words[1:]) for words in instructions if words[0] == "RUN")
    return re.findall(r"-r\s+(\S+)", runs), runs


def test_the_image_installs_only_the_runtime_requirements():
    targets = dockerfile_targets()
    assert targets[""] == targets["runtime"]  # `docker build .` builds the runtime image
    installed, runs = installed_requirements(targets["runtime"])
    assert installed == ["requirements.txt"]
    assert "[dev]" not in runs and "requirements-dev" not in runs
    assert "simulator" not in runs and "werkzeug" not in runs.lower()


def test_the_simulator_target_adds_the_simulator_and_compose_builds_each_target():
    installed, runs = installed_requirements(dockerfile_targets()["simulator"])
    assert installed == ["requirements.txt", "requirements-simulator.txt"]
    assert "requirements-dev" not in runs
    model = merged(load(COMPOSE), load(SIMULATOR_COMPOSE))
    images = set()
    for name, service in model["services"].items():
        if "build" in service:
            target = "simulator" if name == "simulator" else "runtime"
            assert service["build"] == {"context": ".", "target": target}, name
            images.add((service["image"], target))
    # One tag per target: the two images must not overwrite each other.
    assert len({image for image, _ in images}) == len(images) == 2


def test_the_image_copies_named_files_only():
    """No `COPY . .`: a file the Dockerfile does not name (.env, .git, a database) cannot
    reach a layer even when .dockerignore misses it."""
    copies = [words[1:-1] for words in dockerfile_instructions() if words[0] == "COPY"]
    sources = {source for sources in copies for source in sources}
    assert sources <= {"requirements.txt", "requirements-simulator.txt", "pyproject.toml",
                       "README.md", "celeryconfig.py", "trestle_tasks", "trestle_simulator"}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, `!` re-includes, a
    pattern matching a folder excludes what is inside, `**` spans folders."""
    def matches(pattern: str, candidate: str) -> bool:
        tokens = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        regex = "".join(tokens.get(part, re.escape(part))
                        for part in re.split(r"(\*\*/?|\*|\?)", pattern) if part)
        return re.fullmatch(regex, candidate) is not None

    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if any(matches(pattern.lstrip("!").strip("/"), prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", [
    ".env", ".env.production", ".git/config", ".git", "trestle.sqlite3",
    "trestle-demo.sqlite3", "data/trestle.sqlite3", "trestle.sqlite3-wal", "logs/errors.log",
    "trestle_tasks/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/cache",
    ".hypothesis/examples/x", "trestle_tasks.egg-info/PKG-INFO", "celerybeat-schedule",
    "tests/unit/test_errors.py",
])
def test_dockerignore_keeps_secrets_history_and_databases_out(path):
    assert dockerignored(path, dockerignore_patterns())


@pytest.mark.parametrize("path", ["requirements.txt", "requirements-simulator.txt",
                                  "pyproject.toml", "README.md",
                                  "celeryconfig.py", "trestle_tasks/cli/commands.py",
                                  "trestle_simulator/server.py", ".env.example"])
def test_dockerignore_keeps_what_the_image_needs(path):
    assert not dockerignored(path, dockerignore_patterns())


@pytest.mark.parametrize("path", ["celerybeat-schedule", "celerybeat-schedule.db",
                                  "celerybeat-schedule-wal", ".env", "x.sqlite3"])
def test_gitignore_covers_runtime_files(path):
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path],
                            cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, f"{path} is not ignored by .gitignore"
