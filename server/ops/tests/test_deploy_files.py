"""The deployment files agree with each other and with the settings: docker-compose.yml names
its services, ports and health checks, and every variable the settings read reaches the
container (set in the compose file, or documented in .env.example, which becomes its .env)."""

from __future__ import annotations

import ast
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SETTINGS = REPO / "server" / "config" / "settings.py"
SCRIPT = REPO / "deploy" / "container.sh"
SPEC_6 = [
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CORS_ALLOWED_ORIGINS",
    "CSRF_TRUSTED_ORIGINS",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "LLM_PROVIDER",
    "LLM_MODEL",
    "LLM_SYSTEM_PROMPT",
    "LLM_HISTORY_LIMIT",
    "LLM_MAX_OUTPUT_TOKENS",
    "LLM_TIMEOUT_SECONDS",
    "LLM_MAX_RETRIES",
    "LLM_USER_RATE",
    "CHAT_USER_RATE",
    "LLM_USER_DAILY_TOKEN_BUDGET",
    "LLM_MONTHLY_COST_BUDGET_USD",
    "LLM_PRICES",
    "MAX_MESSAGE_CHARS",
]
SETTING_READERS = {"setting", "int_setting", "bool_setting", "list_setting", "dollars_setting"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def web(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["web"]
    return service


def variables_read_by_settings() -> set[str]:
    """Every NAME in setting("NAME", ...), env.bool("NAME", ...) and the like."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        reader = (isinstance(func, ast.Name) and func.id in SETTING_READERS) or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        first = node.args[0]
        if (
            reader
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and re.fullmatch(r"[A-Z][A-Z0-9_]+", first.value)
        ):
            names.add(first.value)
    return names


def documented() -> set[str]:
    """Variables listed in .env.example, set or commented out."""
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_settings_reading_is_found():
    """The scan below is only worth something if it sees the settings' variables."""
    found = variables_read_by_settings()
    assert set(SPEC_6) <= found
    assert {"METRICS_TOKEN", "LOG_FORMAT", "SECURE_PROXY_SSL_HEADER"} <= found


def test_every_variable_the_settings_read_is_passed_or_documented(web):
    passed = set(web["environment"])
    missing = sorted(variables_read_by_settings() - passed - documented())
    assert not missing, f"add to .env.example (or the web service's environment): {missing}"


def test_compose_interpolations_are_documented(compose):
    raw = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", raw))
    assert {"POSTGRES_PASSWORD", "WEB_PORT"} <= used
    assert not used - documented(), "document every ${VAR} of docker-compose.yml in .env.example"


def test_services_and_their_health_checks(compose):
    assert set(compose["services"]) == {"web", "db", "redis"}
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
    assert compose["services"]["db"]["image"].startswith("postgres:")
    assert compose["services"]["redis"]["image"].startswith("redis:")


def test_web_is_built_here_configured_from_dotenv_and_published_on_8000(web):
    assert web["build"] == "."
    assert web["env_file"] in (".env", [".env"])
    assert any(str(port).endswith(":8000") for port in web["ports"])
    assert "EXPOSE 8000" in (REPO / "Dockerfile").read_text()
    assert "PORT:-8000" in SCRIPT.read_text()


def test_web_uses_postgres_and_redis_and_waits_for_them(web):
    env = web["environment"]
    assert re.fullmatch(
        r"postgres://chat:\$\{POSTGRES_PASSWORD[^}]*\}@db:5432/chat", env["DATABASE_URL"]
    )
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["PROMETHEUS_MULTIPROC_DIR"]
    for dependency in ("db", "redis"):
        assert web["depends_on"][dependency]["condition"] == "service_healthy"


def test_web_health_check_is_readyz_through_the_shared_script(web):
    assert web["healthcheck"]["test"] == ["CMD", "/app/deploy/container.sh", "check"]
    assert "/readyz" in SCRIPT.read_text()


def test_the_trusted_proxy_is_the_compose_networks_gateway(compose, web):
    """nginx on the host reaches the container from the network's gateway: that address, and
    no wider one, is what uvicorn believes X-Forwarded-For from by default."""
    ipam = compose["networks"]["default"]["ipam"]["config"][0]
    default = re.fullmatch(
        r"\$\{FORWARDED_ALLOW_IPS:-([^}]+)\}", web["environment"]["FORWARDED_ALLOW_IPS"]
    )
    assert default, web["environment"]["FORWARDED_ALLOW_IPS"]
    assert default.group(1) == ipam["gateway"]
    assert ipaddress.ip_address(ipam["gateway"]) in ipaddress.ip_network(ipam["subnet"])


def test_the_database_lives_in_a_volume(compose):
    volumes = compose["services"]["db"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in volumes
    assert "pgdata" in compose["volumes"]
    db_env = compose["services"]["db"]["environment"]
    assert db_env["POSTGRES_DB"] == "chat"
    assert db_env["POSTGRES_USER"] == "chat"


def test_dockerfile_runs_the_shared_script():
    dockerfile = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    instructions = "\n".join(line for line in lines if line and not line.startswith("#"))
    assert next(line for line in lines if line.startswith("FROM")) == "FROM python:3.11-slim"
    subcommands = set(
        re.findall(r"^(?:RUN|CMD) .*container\.sh[\" ,]+\"?(\w+)", instructions, re.MULTILINE)
    )
    assert subcommands == {"install", "collectstatic", "check", "start"}
    case = re.search(r"^\s+(install \| .*)\)", SCRIPT.read_text(), flags=re.MULTILINE)
    assert case, "container.sh has no subcommand list"
    assert subcommands <= {word.strip() for word in case.group(1).split("|")}
    # Dependencies are installed from pyproject.toml before the code is copied, so that
    # changing the code reuses that layer.
    install = lines.index("RUN deploy/container.sh install")
    assert lines.index("COPY pyproject.toml ./") < install < lines.index("COPY server/ server/")
    # It runs as an ordinary user.
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[0] == "*" or "*" in ignore
    assert "!.env" not in ignore
    assert "server/db.sqlite3*" in ignore
