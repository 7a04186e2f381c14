"""`workers-ai-local serve`: its logging. uvicorn is faked: it logs as the running server would.

--log-format text|json    else WORKERS_AI_LOCAL_LOG_FORMAT, else the config, else text
uvicorn                   logs through our handler (log_config=None), no access log of its own
"""

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server import cli
from server.http.drain import Drain
from server.http.head_with_body import HeadWithBodyProtocol
from server.http.heap import freeze_startup_heap
from server.request_context import request_scope
from tests.support.paths import REPO

CONFIG = str(REPO / "configs" / "cpu-tiny.yaml")


@pytest.fixture(autouse=True)
def root_logging() -> Iterator[None]:
    """The CLI replaces the root logger's handlers: give pytest's back afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers = saved
    root.setLevel(level)


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of each uvicorn server started (and its drain, under "drain" and
    "grace_s"). Running, one logs a line inside a request and one outside; uvicorn itself (its
    Config sets up logging) is never reached."""
    import uvicorn

    from server.http import draining_server

    started: list[dict[str, Any]] = []

    class Server:
        def __init__(
            self,
            options: dict[str, Any],
            drain: Drain,
            grace_s: float,
            on_started: Callable[[], None] | None = None,
        ) -> None:
            started.append(
                {**options, "drain": drain, "grace_s": grace_s, "on_started": on_started}
            )
            self.should_exit = False

        def run(self) -> None:
            with request_scope("req-9"):
                logging.getLogger("workers_ai_local.access").info("inside")
            logging.getLogger("uvicorn.error").info("outside")

    def config(app: Any, **options: Any) -> dict[str, Any]:
        return {"app": app, **options}

    monkeypatch.setattr(uvicorn, "Config", config)
    monkeypatch.setattr(draining_server, "DrainingServer", Server)
    monkeypatch.delenv("WORKERS_AI_LOCAL_LOG_FORMAT", raising=False)
    monkeypatch.setenv("WORKERS_AI_LOCAL_API_TOKENS", "token")
    return started


@pytest.mark.parametrize(
    ("flags", "environment", "chosen"),
    [
        pytest.param([], None, "text", id="default"),
        pytest.param(["--log-format", "json"], None, "json", id="flag"),
        pytest.param([], "json", "json", id="environment"),
        pytest.param(["--log-format", "text"], "json", "text", id="flag-over-environment"),
    ],
)
def test_the_log_format_is_chosen_by_flag_environment_or_default(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    servers: list[dict[str, Any]],
    flags: list[str],
    environment: str | None,
    chosen: str,
) -> None:
    if environment is not None:
        monkeypatch.setenv("WORKERS_AI_LOCAL_LOG_FORMAT", environment)

    assert cli.main(["serve", "--config", CONFIG, *flags]) == 0

    (options,) = servers
    assert options["app"].state.settings.log_format == chosen
    inside, outside = capsys.readouterr().err.splitlines()
    if chosen == "json":
        assert json.loads(inside)["request_id"] == "req-9"
        assert json.loads(outside) | {"time": None} == {
            "time": None,
            "level": "INFO",
            "logger": "uvicorn.error",
            "message": "outside",
            "request_id": "-",
        }
    else:
        assert inside.endswith(" INFO workers_ai_local.access [req-9]: inside")
        assert outside.endswith(" INFO uvicorn.error [-]: outside")


def test_uvicorn_logs_through_our_handler_without_an_access_log_of_its_own(
    servers: list[dict[str, Any]],
) -> None:
    cli.main(["serve", "--config", CONFIG, "--log-level", "warning"])

    (options,) = servers
    assert options["log_config"] is None
    assert options["access_log"] is False
    assert options["log_level"] == "warning"


def test_responses_go_through_the_protocol_that_writes_the_head_with_the_body(
    servers: list[dict[str, Any]],
) -> None:
    cli.main(["serve", "--config", CONFIG])

    (options,) = servers
    assert options["http"] is HeadWithBodyProtocol


def test_the_heap_is_frozen_once_the_server_listens(servers: list[dict[str, Any]]) -> None:
    cli.main(["serve", "--config", CONFIG, "--log-level", "warning"])

    (options,) = servers
    assert options["on_started"] is freeze_startup_heap


def test_the_log_level_applies_to_every_logger(
    capsys: pytest.CaptureFixture[str], servers: list[dict[str, Any]]
) -> None:
    cli.main(["serve", "--config", CONFIG, "--log-level", "warning"])

    assert capsys.readouterr().err == ""


def test_an_unknown_log_format_in_the_environment_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    servers: list[dict[str, Any]],
) -> None:
    monkeypatch.setenv("WORKERS_AI_LOCAL_LOG_FORMAT", "xml")

    assert cli.main(["serve", "--config", CONFIG]) == 2

    assert "log_format" in capsys.readouterr().err
    assert servers == []


def test_an_unknown_log_format_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--config", CONFIG, "--log-format", "xml"])

    assert exit_.value.code == 2
    assert "--log-format" in capsys.readouterr().err


def test_uvicorn_set_up_earlier_in_the_process_still_logs_through_ours(
    capsys: pytest.CaptureFixture[str], servers: list[dict[str, Any]]
) -> None:
    import logging.config

    import uvicorn.config

    # uvicorn's default set-up stops its lines at the `uvicorn` logger, at its own level.
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    capsys.readouterr()

    cli.main(["serve", "--config", CONFIG, "--log-level", "info"])

    assert len(capsys.readouterr().err.splitlines()) == 2


def test_a_signal_drains_the_app_for_drain_timeout_s(
    monkeypatch: pytest.MonkeyPatch, servers: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("WORKERS_AI_LOCAL_DRAIN_TIMEOUT_S", "3")

    cli.main(["serve", "--config", CONFIG])

    (options,) = servers
    assert options["grace_s"] == 3
    assert options["drain"] is options["app"].state.drain


@pytest.mark.parametrize(("level", "httpx_level"), [("info", "WARNING"), ("debug", "DEBUG")])
def test_httpx_lines_about_each_upstream_call_show_only_at_debug(
    level: str, httpx_level: str, servers: list[dict[str, Any]]
) -> None:
    cli.main(["serve", "--config", CONFIG, "--log-level", level])

    assert logging.getLevelName(logging.getLogger("httpx").getEffectiveLevel()) == httpx_level


def test_one_process_refuses_a_prometheus_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    servers: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    assert cli.main(["serve", "--config", CONFIG]) == 2

    assert "unset PROMETHEUS_MULTIPROC_DIR" in capsys.readouterr().err
    assert servers == []
