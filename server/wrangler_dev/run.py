"""`workers-ai-local wrangler-dev`: the fake Cloudflare up, the developer's command run under it.

    check the command (command.py) -> listen on 127.0.0.1:443 (listener.py)
    -> CA and certificate (certs.py) -> the child's environment (environment.py)
    -> its wrangler's version -> the edge served in a thread (edge.py, uvicorn with TLS)
    -> the command runs; its exit status is ours -> the edge stops

Refusals (a command that cannot work, the port, the version) print one message and exit 2
before anything runs.
"""

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn

from server.settings import DEFAULT_CACHE_DIR
from server.wrangler_dev.certs import TLSFiles, ensure_certificates
from server.wrangler_dev.cloudflare_api import WORKER_NAME, PreviewSession
from server.wrangler_dev.command import CommandError, check_version, prepare
from server.wrangler_dev.edge import Edge
from server.wrangler_dev.environment import EDGE_URL, ca_bundle, child_environment
from server.wrangler_dev.forward import Forwarder
from server.wrangler_dev.listener import PORT, ListenError, listen

DEFAULT_SERVER = "http://127.0.0.1:8787"
EDGE_START_TIMEOUT_S = 30.0
EDGE_STOP_TIMEOUT_S = 10.0
# Signals that end the command: passed on to it, and it decides. Ctrl-C (SIGINT) reaches it
# from the terminal directly, so here it is only kept from ending this process first.
FORWARDED = (signal.SIGTERM, signal.SIGHUP)

logger = logging.getLogger("workers_ai_local.wrangler_dev")


def run_wrangler_dev(
    server: str,
    token: str | None,
    argv: Sequence[str],
    environ: Mapping[str, str],
    port: int = PORT,  # another port only for tests: wrangler dials 443
) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    try:
        command = prepare(argv)
        listening = listen(port)
    except (CommandError, ListenError) as error:
        return _refuse(error)
    with listening.socket, tempfile.TemporaryDirectory(prefix="wrangler-dev-") as scratch:
        tls = ensure_certificates(cache_dir(environ) / "wrangler-dev")
        session = PreviewSession()
        edge_url = EDGE_URL if port == PORT else f"{EDGE_URL}:{port}"
        ca = ca_bundle(environ, tls.ca, Path(scratch))
        env = child_environment(environ, session, ca, edge_url)
        try:
            version = check_version(command, env)
        except CommandError as error:
            return _refuse(error)
        forwarder = Forwarder.create(server, token)
        _warn_if_down(forwarder.server)
        with serving(Edge(session, forwarder), listening.socket, tls):
            if command.replaced_name is not None:
                logger.warning(
                    "the Worker runs as %r, not %r, under wrangler-dev (docs/wrangler-dev.md)",
                    WORKER_NAME,
                    command.replaced_name,
                )
            logger.info(
                "wrangler %s: Cloudflare's API and preview edge on %s (%s:%d); env.AI goes to %s",
                version,
                edge_url,
                listening.address,
                port,
                forwarder.server,
            )
            return run_child(command.argv, env)


def cache_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("WORKERS_AI_LOCAL_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()


@contextlib.contextmanager
def serving(app: Callable[..., Any], sock: socket.socket, tls: TLSFiles | None) -> Iterator[None]:
    """`app` on the listening `sock` (with TLS if `tls`), in a thread with its own event loop."""
    config = uvicorn.Config(
        app,
        ssl_certfile=None if tls is None else str(tls.certificate),
        ssl_keyfile=None if tls is None else str(tls.key),
        lifespan="on",
        log_config=None,
        log_level="warning",  # uvicorn's start-up lines would only crowd wrangler's output
        access_log=False,
        timeout_graceful_shutdown=2,  # the binding's idle WebSockets never close by themselves
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="wrangler-dev-edge"
    )
    thread.start()
    deadline = time.monotonic() + EDGE_START_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        if not server.started:
            raise RuntimeError(f"{app!r} did not start")
        yield
    finally:
        server.should_exit = True
        thread.join(EDGE_STOP_TIMEOUT_S)


def run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run the command in the foreground; its exit status, as a shell reports it."""
    try:
        child = subprocess.Popen(argv, env=env)
    except FileNotFoundError:
        return _refuse(CommandError(f"`{argv[0]}` not found"))

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {number: signal.signal(number, pass_on) for number in FORWARDED}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    try:
        returncode = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 - returncode if returncode < 0 else returncode


def _warn_if_down(server: str) -> None:
    try:
        httpx.get(server + "/health", timeout=3, trust_env=False)
    except httpx.TransportError as error:
        logger.warning(
            "no workers-ai-local server answers at %s yet (%s): env.AI calls fail until one does",
            server,
            type(error).__name__,
        )


def _refuse(error: Exception) -> int:
    print(f"workers-ai-local wrangler-dev: {error}", file=sys.stderr)
    return 2
