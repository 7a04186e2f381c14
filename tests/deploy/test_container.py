"""What the container runs and how it is health-checked, from either source: the Dockerfile's
CMD and HEALTHCHECK, or docker-compose.yml's `command` and `healthcheck`. Commands are parsed
with the real CLI and health checks matched against the real app's routes."""

from urllib.parse import urlsplit

import pytest

from server.app import create_app
from server.cli import build_parser
from tests.support.deploy import (
    HEALTH_PATH,
    SOURCES,
    command_settings,
    dockerfile,
    healthcheck_command,
    healthcheck_start_period,
    healthcheck_url,
    seconds,
    serve_command,
    served_port,
)

# --- The command: Dockerfile CMD and compose `command` ------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_command_parses_as_serve_on_all_interfaces(source: str) -> None:
    args = build_parser().parse_args(serve_command(source))
    assert (args.command, args.host) == ("serve", "0.0.0.0")


@pytest.mark.parametrize("source", SOURCES)
def test_command_config_is_a_gpu_profile_that_loads(source: str) -> None:
    settings = command_settings(source)
    assert all(model.local_engine.checkpoint and not model.stand_in for model in settings.models)


@pytest.mark.parametrize("source", SOURCES)
def test_command_port_is_exposed(source: str) -> None:
    assert str(served_port(source)) in dockerfile().last("EXPOSE").split()


# --- Health checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_requests_the_health_path_on_loopback(source: str) -> None:
    url = urlsplit(healthcheck_url(source))
    assert (url.hostname, url.path) == ("127.0.0.1", HEALTH_PATH)


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_path_is_a_route_of_the_app(source: str) -> None:
    app = create_app(command_settings(source), engines={})
    paths = [getattr(route, "path", None) for route in app.routes]
    assert urlsplit(healthcheck_url(source)).path in paths


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_port_is_the_served_port(source: str) -> None:
    assert urlsplit(healthcheck_url(source)).port == served_port(source)


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_uses_python_not_curl(source: str) -> None:
    # The base image is not guaranteed to ship curl; it always has the Python that runs vLLM.
    assert healthcheck_command(source)[:2] == ["python3", "-c"]


@pytest.mark.parametrize("source", SOURCES)
def test_healthcheck_waits_for_32b_weights_to_load(source: str) -> None:
    assert seconds(healthcheck_start_period(source)) >= 15 * 60
