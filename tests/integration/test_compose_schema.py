"""docker-compose.yml against the Compose Specification's JSON schema.

`docker compose config` cannot run here (the docker client has no compose plugin and
there is no engine), so the file is checked against the schema Compose itself validates
with, as shipped inside docker-compose 1.29.2's wheel (fetched from PyPI; never committed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WHEEL = "docker_compose-1.29.2-py2.py3-none-any.whl"


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("compose-wheel")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--disable-pip-version-check", "docker-compose==1.29.2", "-d", str(folder)],
        capture_output=True, text=True, timeout=180)
    if fetched.returncode != 0 or not (folder / WHEEL).exists():
        pytest.skip(f"could not fetch docker-compose's schema: {fetched.stderr[-200:]}")
    with zipfile.ZipFile(folder / WHEEL) as wheel:
        return json.loads(wheel.read("compose/config/compose_spec.json"))


def compose_file(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def problems(schema: dict, document: dict) -> list[str]:
    # The file names draft 2019-09 with a trailing '#', which jsonschema does not look up.
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{'/'.join(map(str, error.path))}: {error.message}"
            for error in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification(compose_schema):
    assert problems(compose_schema, compose_file()) == []


def test_the_simulator_override_follows_it_alone_and_merged(compose_schema):
    from tests.unit.test_deployment_files import merged

    override = compose_file("docker-compose.simulator.yml")
    assert problems(compose_schema, override) == []
    assert problems(compose_schema, merged(compose_file(), override)) == []


def test_the_check_would_catch_a_mistake(compose_schema):
    broken = compose_file()
    broken["services"]["redis"]["restart_policy"] = "always"  # not a Compose key
    assert problems(compose_schema, broken)
