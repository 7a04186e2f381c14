"""Real upstreams for remote mode: `vllm serve` replicas of the tiny builtin checkpoints (the
CPU build, through `bench.vllm_launcher`) and a real `vllm-router` in front of some of them.

    with ExitStack() as stack:
        qwq_a, qwq_b, r1 = stack.enter_context(replicas(SPECS, cache_dir, lora_dir, workdir))
        front = stack.enter_context(router([qwq_a, qwq_b], workdir))

Replicas start all at once (three take 100-280 s together on two shared cores: mostly imports
in their three processes each), each in its own process group, so that stopping one, killing
one (`kill -9`, as a lost machine would) or a failing test leaves no EngineCore behind. Each
replica resolves LoRA adapters from one shared folder (vLLM's filesystem resolver), as an
operator's replicas would from a shared volume.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from engine.builtin.checkpoints import prepare_checkpoint
from engine.config import BuiltinCheckpoint
from engine.vllm.engine import AMX_WORKER_EXTENSION
from tests.support.live import QWQ, R1
from tests.support.live_server import TOKEN, RunningServer, free_port, running_server
from tests.support.paths import REPO

STARTUP_TIMEOUT_S = 600
STOP_TIMEOUT_S = 30
STALL_TOLERANT_CONNECT_S = 120


@dataclass(frozen=True)
class ReplicaSpec:
    """One `vllm serve` of a tiny checkpoint, sized for tests on a small CPU machine."""

    builtin: BuiltinCheckpoint
    served_model_name: str
    max_model_len: int
    max_num_seqs: int = 4
    max_queued: int = 16
    """`--max-num-queued-reqs`: running plus waiting requests; past it vLLM answers 503."""
    lora: bool = True
    max_loras: int = 3
    max_cpu_loras: int = 5
    """Adapter slots: 2 in a batch and 4 cached, plus one for the gateway's zero adapter
    (`RemoteConfig.zero_adapter`, needed on CPU replicas)."""


@dataclass
class Upstream:
    """A server this harness started: its URL, process (a group leader) and log."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL the whole process group at once: the machine is gone, nothing cleans up."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL whatever is left of it."""
        _signal_group(self.process, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        _signal_group(self.process, signal.SIGKILL)  # stragglers, leader gone or not
        self.process.wait()


@dataclass
class Replica(Upstream):
    spec: ReplicaSpec
    checkpoint: Path

    def metrics(self) -> "Metrics":
        return scrape(self.url + "/metrics")

    def model_ids(self) -> list[str]:
        """`/v1/models`: the base model, then every LoRA adapter this replica has loaded."""
        listing = httpx.get(self.url + "/v1/models", timeout=60).json()
        return [entry["id"] for entry in listing["data"]]


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # Each server leads its own group (start_new_session), so this reaches its children too.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_healthy(servers: Sequence[Upstream], timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until every server answers /health 200; fail at once if one exits."""
    deadline = time.monotonic() + timeout_s
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            if server.healthy():
                waiting.remove(server)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(server.name for server in waiting)
            raise RuntimeError(f"not healthy after {timeout_s} s: {names}")
        time.sleep(0.5)


def replica_command(spec: ReplicaSpec, checkpoint: Path, port: int) -> list[str]:
    """`vllm serve` as an operator would run it for remote mode (see engine.remote.engine)."""
    length = str(spec.max_model_len)
    command = [
        sys.executable, "-m", "bench.vllm_launcher", "serve", str(checkpoint),
        "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", spec.served_model_name,
        "--max-model-len", length,
        "--enforce-eager",
        "--dtype", "bfloat16",
        "--max-num-seqs", str(spec.max_num_seqs),
        "--max-num-queued-reqs", str(spec.max_queued),
        # The CPU build kills its engine on a seeded request prefilled in chunks (see
        # engine.vllm.engine.engine_args): prefill every prompt in one step.
        "--no-enable-chunked-prefill", "--max-num-batched-tokens", length,
        # JSON without runaway whitespace, as in-process. No --reasoning-parser: with one, a
        # grammar would wait for </think> (see engine.remote.engine, "Where a grammar starts").
        "--structured-outputs-config", '{"backend": "guidance", "disable_any_whitespace": true}',
        "--disable-uvicorn-access-log",
        # A one-token prompt would kill a worker on a CPU with AMX (see engine.vllm.amx).
        "--worker-extension-cls", AMX_WORKER_EXTENSION,
    ]  # fmt: skip
    if spec.lora:
        command += [
            "--enable-lora", "--max-lora-rank", "32",
            "--max-loras", str(spec.max_loras), "--max-cpu-loras", str(spec.max_cpu_loras),
        ]  # fmt: skip
    return command


def replica_env(lora_dir: Path, core: int) -> dict[str, str]:
    return {
        **os.environ,
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        # vLLM binds each engine's compute thread to core 0 unless told otherwise: spread them.
        "VLLM_CPU_OMP_THREADS_BIND": str(core),
        # Adapters load on first use from <lora_dir>/<name>/ (vLLM's filesystem resolver);
        # resolvers run only with runtime LoRA updating on. All general plugins load when
        # VLLM_PLUGINS is unset; naming the one needed keeps the Hugging Face resolver out.
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1",
        "VLLM_LORA_RESOLVER_CACHE_DIR": str(lora_dir),
        "VLLM_PLUGINS": "lora_filesystem_resolver",
    }


@contextmanager
def replicas(
    specs: Sequence[ReplicaSpec], cache_dir: Path, lora_dir: Path, workdir: Path
) -> Iterator[list[Replica]]:
    """Start one replica per spec, all at once; yield them healthy; stop them all after."""
    lora_dir.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0))
    with ExitStack() as stack:
        started: list[Replica] = []
        for index, spec in enumerate(specs):
            checkpoint = prepare_checkpoint(spec.builtin, cache_dir, progress=False)
            port = free_port()
            name = f"{spec.served_model_name}-{index}"
            log = workdir / f"{name}.log"
            env = replica_env(lora_dir, cores[index % len(cores)])
            process = _spawn(replica_command(spec, checkpoint, port), log, env)
            replica = Replica(name, f"http://127.0.0.1:{port}", process, log, spec, checkpoint)
            stack.callback(replica.stop)
            started.append(replica)
        _wait_healthy(started)
        yield started


def router_command(workers: Sequence[Upstream], port: int, metrics_port: int) -> list[str]:
    """`vllm-router` in front of `workers`, with checks quick enough for tests.

    What 0.1.17 does, seen here: `cache_aware` sends a prompt to the worker that saw its prefix
    (from the token ids too) and any other to the one with the fewest requests in flight, the
    first on a tie; it retries a 503 (full queue) and a refused connection on another worker;
    its `/health` is 503 once ANY worker is down (`/readiness` stays 200 while one is up)."""
    executable = shutil.which("vllm-router", path=str(Path(sys.executable).parent))
    if executable is None:
        raise RuntimeError("vllm-router is not installed: pip install vllm-router")
    return [
        executable,
        "--host", "127.0.0.1", "--port", str(port),
        "--worker-urls", *(worker.url for worker in workers),
        "--policy", "cache_aware",
        # Its Prometheus exporter binds a fixed port (29000) unless told otherwise.
        "--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics_port),
        "--worker-startup-check-interval", "1",
        "--health-check-interval-secs", "1",
        "--health-failure-threshold", "1",
        "--log-level", "warning",
    ]  # fmt: skip


@contextmanager
def router(workers: Sequence[Upstream], workdir: Path, name: str = "router") -> Iterator[Upstream]:
    """A `vllm-router` in front of healthy `workers`; stopped after."""
    port = free_port()
    command = router_command(workers, port, free_port())
    process = _spawn(command, workdir / f"{name}.log", dict(os.environ))
    front = Upstream(name, f"http://127.0.0.1:{port}", process, workdir / f"{name}.log")
    try:
        _wait_healthy([front], timeout_s=60)
        yield front
    finally:
        front.stop()


def remote_model(
    name: str, url: str, spec: ReplicaSpec, lora_dir: Path, health_path: str = "/health"
) -> dict[str, Any]:
    """One model of our server's config, generated at `url` (a replica of `spec`, or a router
    in front of several); max_model_len learned from the upstream. With `spec.lora`, LoRA
    through the replicas' resolver folder, with the zero adapter that CPU replicas need."""
    remote: dict[str, Any] = {
        "url": url,
        "served_model_name": spec.served_model_name,
        "tokenizer": spec.builtin,
        "health_path": health_path,
        # The hypervisor of these machines can stop a process for many seconds (steal time;
        # the server logs such stalls). A connection under way meanwhile would time out when
        # the process runs again, before its socket is read: the timer's expiry comes first.
        "connect_timeout_s": STALL_TOLERANT_CONNECT_S,
    }
    if spec.lora:
        remote.update(enable_lora=True, lora_dir=str(lora_dir), zero_adapter=True)
    return {"name": name, "stand_in": "tiny random-weight Qwen2", "remote": remote}


@dataclass(frozen=True)
class RemoteStack:
    """Our server in remote mode: QwQ through a router of QwQ replicas, R1 from one replica."""

    qwq: list[Replica]
    r1: Replica
    front: Upstream
    server: RunningServer
    lora_dir: Path

    def client(self) -> httpx.Client:
        """A client of our server, with its token."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.Client(base_url=self.server.base_url, headers=headers, timeout=120)

    def qwq_metric(self, name: str) -> list[float]:
        """`name`'s total on each QwQ replica."""
        return [total(replica.metrics(), name) for replica in self.qwq]


@contextmanager
def remote_stack(
    work: Path, qwq: ReplicaSpec, r1: ReplicaSpec, cache_dir: Path
) -> Iterator[RemoteStack]:
    """Two `qwq` replicas behind a router and one `r1` replica (all started at once), and our
    server (`workers-ai-local serve`, token `live_server.TOKEN`) in front of both; all stopped
    after, whatever happened."""
    lora_dir = work / "published"
    with ExitStack() as stack:
        qwq_a, qwq_b, r1_replica = stack.enter_context(
            replicas([qwq, qwq, r1], cache_dir, lora_dir, work)
        )
        front = stack.enter_context(router([qwq_a, qwq_b], work))
        models = [
            remote_model(QWQ, front.url, qwq, lora_dir, health_path="/readiness"),
            remote_model(R1, r1_replica.url, r1, lora_dir),
        ]
        config = work / "remote.yaml"
        config.write_text(json.dumps({"models": models}))
        adapters = str(work / "adapters")
        server = stack.enter_context(
            running_server(config, work / "server.log", WORKERS_AI_LOCAL_ADAPTERS_DIR=adapters)
        )
        yield RemoteStack([qwq_a, qwq_b], r1_replica, front, server, lora_dir)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


Metrics = list[Sample]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(url: str) -> Metrics:
    """Every sample of a Prometheus text exposition."""
    text = httpx.get(url, timeout=60).text
    samples = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append(Sample(match.group(1), labels, float(match.group(3))))
    return samples


def total(metrics: Metrics, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        sample.value
        for sample in metrics
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def wait_until(condition: Callable[[], bool], within_s: float = 15) -> None:
    """Poll `condition` until it holds; fail after `within_s` (a bound, not a measurement)."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)
