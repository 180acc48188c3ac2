"""docker-compose.yml as users need it (this machine has no `docker compose config`)."""

import yaml

from tests.conftest import REPO_ROOT


def test_compose_file_has_every_service_with_health_and_safe_flower():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "mysql", "worker", "beat", "flower", "simulator", "migrate"} <= set(services)
    assert services["simulator"]["profiles"] == ["simulator"]
    for name in ("redis", "mysql", "worker"):
        assert "healthcheck" in services[name], name
    for name in ("redis", "mysql", "worker", "beat", "flower"):
        assert services[name]["restart"] == "unless-stopped", name
    assert "mysql-data" in compose["volumes"]
    assert services["mysql"]["image"].startswith("mysql:8")
    flower = services["flower"]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])
    assert any("--basic-auth" in part for part in flower["entrypoint"])
    for name in ("worker", "beat", "flower"):
        assert services[name]["env_file"] == [".env"]
        assert "SECRET" not in str(services[name].get("environment", {}))
