"""`workers-ai-local`: the command line. The only place that reads the environment."""

import argparse
import logging
import sys
from pathlib import Path

from server.logs import configure_logging
from server.settings import ConfigError, load_settings

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
        "--log-format",
        choices=["text", "json"],
        help="'json': one JSON object a line, for log shippers (default from the config: text)",
    )
    prepare = commands.add_parser(
        "prepare", help="build the local checkpoints a config uses, then exit"
    )
    prepare.add_argument("--config", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
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

    settings = load_settings(
        args.config, host=args.host, port=args.port, log_format=args.log_format
    )
    configure_logging(args.log_level, settings.log_format)
    check_token_policy(settings)
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
            # Runs after the drain (SIGTERM, SIGINT), when every request has answered.
            timeout_graceful_shutdown=CONNECTIONS_CLOSE_S,
        ),
        drain,
        grace_s=settings.drain_timeout_s,
    )
    server.run()
    return exit_code


def _prepare(args: argparse.Namespace) -> int:
    from engine.builtin.checkpoints import prepare_checkpoint

    settings = load_settings(args.config)
    configure_logging("info", settings.log_format)
    for model in settings.models:
        if model.engine.builtin is not None:
            path = prepare_checkpoint(model.engine.builtin, settings.resolved_cache_dir())
            print(f"{model.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
