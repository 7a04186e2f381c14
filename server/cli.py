"""`workers-ai-local`: the command line. The only place that reads the environment."""

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from server.check import Device, check_settings, render
from server.logs import configure_logging
from server.settings import ConfigError, Settings, load_settings

logger = logging.getLogger("workers_ai_local")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workers-ai-local",
        description="Serve Cloudflare Workers AI's REST API with vLLM.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--config", type=Path, required=True, help="YAML profile, see configs/")
    serve.add_argument("--host", help="address to bind (default from the config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default from the config: 8787)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on one port; more than 1 only when every model is remote",
    )
    # A listening socket handed down by `--workers` (server.workers), and how many workers
    # share it; not for people.
    serve.add_argument("--socket-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--worker-of", type=int, default=1, help=argparse.SUPPRESS)
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="'json': one JSON object a line, for log shippers (default from the config: text)",
    )
    prepare = commands.add_parser(
        "prepare", help="build the local checkpoints a config uses, then exit"
    )
    prepare.add_argument("--config", type=Path, required=True)
    check = commands.add_parser(
        "check",
        help="show what a config would serve and what stops it, without starting engines; "
        "exit 1 on errors",
    )
    check.add_argument("--config", type=Path, required=True)
    check.add_argument(
        "--device",
        choices=["auto", "cpu", "gpu"],
        default="auto",
        help="check for this device (default: the installed vLLM build's)",
    )
    check.add_argument(
        "--probe", action="store_true", help="ask each remote upstream for its /v1/models"
    )
    wrangler_dev = commands.add_parser(
        "wrangler-dev",
        help="run `wrangler dev` with env.AI served by a workers-ai-local server, offline "
        "(docs/wrangler-dev.md)",
    )
    wrangler_dev.add_argument(
        "--server", default="http://127.0.0.1:8787", help="the server env.AI goes to"
    )
    wrangler_dev.add_argument(
        "--token", help="an API token of that server (default: $WORKERS_AI_LOCAL_TOKEN)"
    )
    wrangler_dev.add_argument(
        "wrangler_command", nargs=argparse.REMAINDER, metavar="-- WRANGLER_COMMAND ..."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args)
        if args.command == "wrangler-dev":
            return _wrangler_dev(args)
        return _prepare(args)
    except ConfigError as error:
        print(f"workers-ai-local: {error}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.auth import check_token_policy
    from server.http.drain import Drain
    from server.http.draining_server import CONNECTIONS_CLOSE_S, DrainingServer
    from server.http.head_with_body import HeadWithBodyProtocol
    from server.http.heap import freeze_startup_heap
    from server.workers import check_workers, run_workers, worker_share

    settings = load_settings(
        args.config, host=args.host, port=args.port, log_format=args.log_format
    )
    settings = worker_share(settings, args.worker_of)
    configure_logging(args.log_level, settings.log_format)
    check_token_policy(settings)
    check_workers(settings, args.workers)
    if args.workers > 1:
        return run_workers(_serve_args(args), settings, args.workers)
    if args.socket_fd is None and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        raise ConfigError(
            "unset PROMETHEUS_MULTIPROC_DIR: one server process keeps its metrics in memory, "
            "and `serve --workers N` sets its own"
        )
    _refuse_what_check_refuses(settings)
    if not settings.api_tokens:
        logger.warning(
            "no API token configured: accepting requests without authentication, "
            "on the loopback address %s only",
            settings.host,
        )
    server: DrainingServer | None = None
    exit_code = 0

    def stop_after_engine_failure() -> None:
        # Non-zero, so that compose, systemd or Kubernetes restart the server.
        nonlocal exit_code
        exit_code = 1
        if server is not None:
            server.should_exit = True  # uvicorn's shutdown, without a drain: the engine is gone

    drain = Drain()
    app = create_app(settings, on_engine_failure=stop_after_engine_failure, drain=drain)
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            # uvicorn's lines go through our handler, in our format; its access log would
            # repeat server.http.request_log's line for every request.
            log_config=None,
            access_log=False,
            http=HeadWithBodyProtocol,  # a response's head and first body bytes in one write
            # Runs after the drain (SIGTERM, SIGINT), when every request has answered.
            timeout_graceful_shutdown=CONNECTIONS_CLOSE_S,
        ),
        drain,
        grace_s=settings.drain_timeout_s,
        on_started=freeze_startup_heap,
    )
    if args.socket_fd is None:
        server.run()
    else:
        server.run(sockets=[socket.socket(fileno=args.socket_fd)])
    return exit_code


def _serve_args(args: argparse.Namespace) -> list[str]:
    """The `serve` arguments of one worker of `--workers`."""
    forwarded = ["--config", str(args.config), "--log-level", args.log_level]
    for flag, value in (
        ("--host", args.host),
        ("--port", args.port),
        ("--log-format", args.log_format),
    ):
        if value is not None:
            forwarded += [flag, str(value)]
    return forwarded


def _prepare(args: argparse.Namespace) -> int:
    from engine.builtin.checkpoints import prepare_checkpoint

    settings = load_settings(args.config)
    configure_logging("info", settings.log_format)
    for model in settings.models:
        if model.engine is not None and model.engine.builtin is not None:
            path = prepare_checkpoint(model.engine.builtin, settings.resolved_cache_dir())
            print(f"{model.name}: {path}")
    return 0


def _wrangler_dev(args: argparse.Namespace) -> int:
    from server.wrangler_dev.run import run_wrangler_dev

    configure_logging("info", "text")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per env.AI call: noise
    token = args.token or os.environ.get("WORKERS_AI_LOCAL_TOKEN")
    return run_wrangler_dev(args.server, token, args.wrangler_command, os.environ)


def _refuse_what_check_refuses(settings: Settings) -> None:
    """Stop before any engine starts on what `check` calls an error: a typo in the second
    model's vllm_args would otherwise surface after the first model has loaded for minutes."""
    device, _ = _installed_device()
    report = check_settings(settings, device=device, environ=os.environ)
    for finding in report.findings:
        if finding.level == "warning":
            logger.warning("%s: %s", finding.where, finding.message)
    errors = [f"{f.where}: {f.message}" for f in report.findings if f.level == "error"]
    if errors:
        raise ConfigError(
            "cannot serve this config (`workers-ai-local check` shows it all):\n  "
            + "\n  ".join(errors)
        )


def _check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"workers-ai-local check: {error}", file=sys.stderr)
        return 1
    device, note = _installed_device()
    if args.device != "auto":
        device, note = args.device, "chosen with --device"
    report = check_settings(settings, device=device, environ=os.environ, probe=args.probe)
    print(render(report, args.config, note))
    return 0 if report.usable else 1


def _installed_device() -> tuple[Device, str]:
    """The device the installed vLLM build runs on, and how `check` says it chose it."""
    from engine.vllm.engine import is_cpu_build

    if is_cpu_build():
        return "cpu", "the installed vLLM is the CPU build; --device gpu checks for a GPU machine"
    return "gpu", "the installed vLLM is not the CPU build; --device cpu checks for a CPU"


if __name__ == "__main__":
    sys.exit(main())
