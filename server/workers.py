"""`serve --workers N`: N server processes answering on one port, for profiles whose engines are
all remote (each process would otherwise start engines of its own).

This process binds the port and starts N copies of `serve`, each given a listening socket
(`--socket-fd`). On Linux each worker has a socket of its own on the port (SO_REUSEPORT), and the
kernel spreads new connections over them evenly; on one shared socket, the worker that wakes
first accepts every connection waiting, and a burst of new clients lands on that one worker
(seen: eight of eight). Elsewhere they share one socket. Nothing else is shared in memory:
request ids are random, finetunes live on disk (one writer at a time by file lock), and each
process reports its own `/health`. A remote model's `max_concurrent_requests` is split between
the workers (`worker_share`, told by `--worker-of N`), so that the set never sends more upstream
than the config says: each worker refuses past its share, and connections are spread evenly.
`/metrics` reports the whole set, whichever worker answers: the workers start with
PROMETHEUS_MULTIPROC_DIR naming a fresh directory of this process's
(`server.http.metrics_multiprocess`), in which prometheus-client keeps every worker's values; a
worker that exits has its live gauges taken out of the sums, and the directory is removed once
every worker has stopped.

SIGTERM and SIGINT are passed on to every worker, which drains as a single server does. When a
worker exits by itself, the others are stopped and this process exits with the worker's
status, so that a supervisor restarts the whole set.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from server.http.metrics_multiprocess import SharedMetricsDir
from server.settings import ConfigError, Settings

logger = logging.getLogger("workers_ai_local")

POLL_S = 0.5


def check_workers(settings: Settings, workers: int) -> None:
    """Raises ConfigError unless `workers` processes can serve `settings`."""
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    local = [model.name for model in settings.models if model.remote is None]
    if workers > 1 and local:
        raise ConfigError(
            f"--workers {workers} needs every model on a remote engine; "
            f"{', '.join(local)} would start an engine in every worker"
        )
    for model in settings.models:
        cap = None if model.remote is None else model.remote.max_concurrent_requests
        if cap is not None and cap < workers:
            raise ConfigError(
                f"{model.name}: max_concurrent_requests {cap} cannot be shared by {workers} "
                f"workers (each sends at least one request upstream): raise it to {workers} "
                "or run fewer workers"
            )


def worker_share(settings: Settings, workers: int) -> Settings:
    """The settings of one worker among `workers`: each remote model's
    `max_concurrent_requests` divided between them (`check_workers` refuses a limit below
    `workers`)."""
    if workers == 1:
        return settings
    models = []
    for model in settings.models:
        if model.remote is not None and model.remote.max_concurrent_requests is not None:
            share = model.remote.max_concurrent_requests // workers
            remote = model.remote.model_copy(update={"max_concurrent_requests": share})
            model = model.model_copy(update={"remote": remote})
        models.append(model)
    return settings.model_copy(update={"models": models})


def describe_shares(settings: Settings, workers: int) -> list[str]:
    """What each worker may send upstream (`worker_share`), where the config sets a limit."""
    lines = []
    for model in settings.models:
        cap = None if model.remote is None else model.remote.max_concurrent_requests
        if cap is not None:
            lines.append(
                f"{model.name}: at most {cap // workers} requests upstream per worker, "
                f"{cap // workers * workers} in all (max_concurrent_requests {cap})"
            )
    return lines


def bind(host: str, port: int, count: int = 1) -> list[socket.socket]:
    """The listening sockets of `count` workers on one port, one for each: their own where the
    kernel has SO_REUSEPORT, else the same shared one."""
    # A plain bind first: a port in use fails here, even when its listener would let sockets
    # with SO_REUSEPORT (of this user) join it and take a share of its connections.
    probe = _bound(host, port, reuse_port=False)
    port = probe.getsockname()[1]  # the port the system chose, if asked for port 0
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        probe.listen(2048)
        probe.set_inheritable(True)
        return [probe] * count
    probe.close()
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            listener = _bound(host, port, reuse_port=True)
            listener.listen(2048)
            listener.set_inheritable(True)
            listeners.append(listener)
    except ConfigError:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return listener


def run_workers(serve_args: list[str], settings: Settings, workers: int) -> int:
    """Run `workers` copies of `serve <serve_args>` on one port until they stop; the exit
    status of the first that stopped by itself, or 0 after a signal."""
    listeners = bind(settings.host, settings.port, workers)
    for line in describe_shares(settings, workers):
        logger.info("%s", line)
    command = [sys.executable, "-m", "server.cli", "serve", *serve_args]
    command += ["--worker-of", str(workers), "--socket-fd"]
    with SharedMetricsDir() as metrics_dir:
        environment = metrics_dir.environment(os.environ)
        try:
            processes = [
                subprocess.Popen(
                    [*command, str(listener.fileno())],
                    pass_fds=(listener.fileno(),),
                    env=environment,
                )
                for listener in listeners
            ]
        finally:
            for listener in set(listeners):
                listener.close()  # the workers hold them now
        logger.info(
            "%d workers (pids %s) serve http://%s:%d",
            workers,
            ", ".join(str(process.pid) for process in processes),
            settings.host,
            settings.port,
        )
        return _supervise(processes, metrics_dir)


def _supervise(processes: list[subprocess.Popen[bytes]], metrics_dir: SharedMetricsDir) -> int:
    """Pass signals on to the workers until they have all stopped; see `run_workers`."""
    stopping = False
    reaped: set[int] = set()

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    def reap(process: subprocess.Popen[bytes]) -> None:
        # A worker that stopped no longer runs requests: its live gauges leave the sums the
        # others' /metrics report (they still answer while they drain).
        if process.pid not in reaped:
            reaped.add(process.pid)
            metrics_dir.process_exited(process.pid)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            exited = [process for process in processes if process.poll() is not None]
            for process in exited:
                reap(process)
            if len(exited) == len(processes):
                return 0 if stopping else max(abs(process.returncode) for process in exited)
            if exited and not stopping:
                first = exited[0]
                logger.error(
                    "worker %d exited with status %d: stopping the others",
                    first.pid,
                    first.returncode,
                )
                forward(signal.SIGTERM, None)
                stopping = True
                for process in processes:
                    process.wait()
                    reap(process)
                return first.returncode or 1
            time.sleep(POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
