"""Stopping the container: Docker's signal is one that drains, and Docker waits for the drain
and the engines' shutdown (`drain_timeout_s` + `SHUTDOWN_MARGIN_S`) before it sends SIGKILL."""

import pytest

from server.http.draining_server import SHUTDOWN_MARGIN_S
from server.settings import Settings
from tests.support.deploy import (
    command_settings,
    dockerfile,
    documented_stop_timeout,
    seconds,
    service,
)


def needed_stop_timeout_s(settings: Settings) -> float:
    return settings.drain_timeout_s + SHUTDOWN_MARGIN_S


def test_the_default_drain_is_what_the_deployment_is_sized_for() -> None:
    assert Settings.model_fields["drain_timeout_s"].default == 30
    assert command_settings("compose").drain_timeout_s == 30  # the profile keeps the default


def test_the_image_stops_with_a_signal_that_drains() -> None:
    assert dockerfile().last("STOPSIGNAL") == "SIGTERM"
    assert service().get("stop_signal", "SIGTERM") == "SIGTERM"


def test_compose_waits_for_the_drain_and_the_engines() -> None:
    grace = seconds(str(service()["stop_grace_period"]))

    assert grace == needed_stop_timeout_s(command_settings("compose"))


@pytest.mark.parametrize("source", ["dockerfile"])
def test_the_documented_docker_run_waits_as_long(source: str) -> None:
    assert documented_stop_timeout() == needed_stop_timeout_s(command_settings(source))
