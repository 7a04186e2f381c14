"""`workers-ai-local`: the command line. The only place that reads the environment."""

import argparse
import logging
import sys
from pathlib import Path

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
    prepare = commands.add_parser(
        "prepare", help="build the local checkpoints a config uses, then exit"
    )
    prepare.add_argument("--config", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "info").upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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

    settings = load_settings(args.config, host=args.host, port=args.port)
    check_token_policy(settings)
    if not settings.api_tokens:
        logger.warning(
            "no API token configured: accepting requests without authentication, "
            "on the loopback address %s only",
            settings.host,
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
    )
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from engine.builtin.checkpoints import prepare_checkpoint

    settings = load_settings(args.config)
    for model in settings.models:
        if model.engine.builtin is not None:
            path = prepare_checkpoint(model.engine.builtin, settings.resolved_cache_dir())
            print(f"{model.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
