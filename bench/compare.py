"""Benchmark workers-ai-local against vLLM's own OpenAI-compatible server on the same model.

Both servers run the same tiny checkpoint with the same engine settings, one after the other
(never together: they would share the CPU). Each gets the same streamed chat requests at each
concurrency level; we print requests/s, output tokens/s and p50 time to first token, and the
ratios ours/theirs. Run: `make bench` (or `python -m bench.compare --help`).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.builtin.checkpoints import prepare_checkpoint
from engine.config import EngineConfig
from engine.vllm.engine import engine_args, is_cpu_build
from server.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
MODEL = "@cf/qwen/qwq-32b"
TOKEN = "bench-token"


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    output_tokens: int


@dataclass(frozen=True)
class Run:
    concurrency: int
    requests: int
    wall_s: float
    samples: list[Sample]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_s

    @property
    def output_tokens_per_s(self) -> float:
        return sum(sample.output_tokens for sample in self.samples) / self.wall_s

    @property
    def p50_ttft_ms(self) -> float:
        return statistics.median(sample.ttft_s for sample in self.samples) * 1000


class Target:
    """How to send one streamed chat request to a server and read its stream."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.base_url = base_url

    def request(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, object]]:
        raise NotImplementedError

    def parse(self, event: dict[str, object]) -> tuple[str, int | None]:
        """Text of the event and, on the usage event, the output token count."""
        raise NotImplementedError


class Ours(Target):
    def request(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, object]]:
        body = {
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }
        return f"/client/v4/accounts/bench/ai/run/{MODEL}", body

    def parse(self, event: dict[str, object]) -> tuple[str, int | None]:
        usage = event.get("usage")
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        return str(event.get("response", "")), tokens


class Theirs(Target):
    def request(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, object]]:
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return "/v1/chat/completions", body

    def parse(self, event: dict[str, object]) -> tuple[str, int | None]:
        usage = event.get("usage")
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        choices = event.get("choices") or []
        text = ""
        if isinstance(choices, list) and choices:
            delta = choices[0].get("delta", {})
            text = str(delta.get("content") or delta.get("reasoning") or "")
        return text, tokens


async def one_request(
    client: httpx.AsyncClient, target: Target, prompt: str, max_tokens: int
) -> Sample:
    path, body = target.request(prompt, max_tokens)
    start = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    async with client.stream("POST", target.base_url + path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            text, count = target.parse(json.loads(line[6:]))
            if text and ttft is None:
                ttft = time.perf_counter() - start
            if count is not None:
                tokens = count
    return Sample(
        ttft_s=ttft if ttft is not None else time.perf_counter() - start, output_tokens=tokens
    )


async def load(target: Target, concurrency: int, requests: int, max_tokens: int) -> Run:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=600, limits=limits) as client:
        for index in range(2):  # warm-up
            await one_request(client, target, f"warm up {index}", 8)
        gate = asyncio.Semaphore(concurrency)

        async def gated(index: int) -> Sample:
            async with gate:
                prompt = f"Request {index}: explain topic number {index} in detail."
                return await one_request(client, target, prompt, max_tokens)

        start = time.perf_counter()
        samples = await asyncio.gather(*(gated(index) for index in range(requests)))
        wall = time.perf_counter() - start
    return Run(concurrency, requests, wall, list(samples))


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not healthy after {timeout_s} s")


@contextmanager
def started(command: list[str], health_url: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_healthy(health_url, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def bench_config(source: Path, workdir: Path, lora: bool) -> tuple[Path, Path, EngineConfig]:
    """A one-model config for ours, and the checkpoint and engine settings both servers use."""
    settings = load_settings(source)
    model = next(model for model in settings.models if model.name == MODEL)
    # LoRA off unless asked: on the CPU build every request then runs through an adapter
    # (see engine/vllm/lora.py), which measures that workaround rather than the server.
    engine = model.engine.model_copy(update={"enable_lora": lora})
    assert engine.builtin is not None, "the benchmark needs a builtin checkpoint"
    checkpoint = prepare_checkpoint(engine.builtin, settings.resolved_cache_dir())
    config = workdir / "bench.yaml"
    config.write_text(
        json.dumps({"models": [{"name": MODEL, "engine": engine.model_dump(exclude_none=True)}]})
    )
    return config, checkpoint, engine


def vllm_serve_flags(args: dict[str, object]) -> list[str]:
    """`vllm serve` flags for the engine arguments our server uses, so both engines match."""
    flags: list[str] = []
    for name, value in args.items():
        if name == "model" or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    if args.get("enable_chunked_prefill") is False:
        flags.append("--no-enable-chunked-prefill")
    return flags


def run_all(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    config, checkpoint, engine = bench_config(args.config, workdir, args.lora)
    env = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN, "VLLM_TARGET_DEVICE": "cpu"}
    theirs_cmd = [
        sys.executable, "-m", "bench.vllm_launcher", "serve", str(checkpoint),
        "--port", str(args.port), "--served-model-name", "tiny", "--disable-uvicorn-access-log",
        *vllm_serve_flags(engine_args(engine, str(checkpoint), cpu=is_cpu_build())),
    ]  # fmt: skip
    ours_cmd = [
        sys.executable, "-m", "server.cli", "serve", "--config", str(config),
        "--port", str(args.port), "--log-level", "warning",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    results: dict[str, list[Run]] = {}
    for target, command in (
        (Theirs("vllm serve", base), theirs_cmd),
        (Ours("workers-ai-local", base), ours_cmd),
    ):
        print(f"starting {target.name} ...", flush=True)
        with started(
            command, base + "/health", workdir / f"{target.name.replace(' ', '-')}.log", env
        ):
            results[target.name] = [
                asyncio.run(load(target, concurrency, args.requests * concurrency, args.max_tokens))
                for concurrency in args.concurrency
            ]
    report(results, args)


def report(results: dict[str, list[Run]], args: argparse.Namespace) -> None:
    theirs, ours = results["vllm serve"], results["workers-ai-local"]
    print(f"\nmodel: tiny random-weight Qwen2 ({MODEL} tokenizer)")
    print(f"streaming chat requests, max_tokens={args.max_tokens}, temperature 0")
    header = (
        f"{'concurrency':>11} | {'server':<16} | {'req/s':>7} | {'out tok/s':>9} | "
        f"{'p50 TTFT ms':>11}"
    )
    print(header)
    print("-" * len(header))
    for their, our in zip(theirs, ours, strict=True):
        for name, run in (("vllm serve", their), ("workers-ai-local", our)):
            print(
                f"{run.concurrency:>11} | {name:<16} | {run.requests_per_s:>7.2f} | "
                f"{run.output_tokens_per_s:>9.1f} | {run.p50_ttft_ms:>11.1f}"
            )
        requests_ratio = our.requests_per_s / their.requests_per_s
        tokens_ratio = our.output_tokens_per_s / their.output_tokens_per_s
        ttft_ratio = our.p50_ttft_ms / their.p50_ttft_ms
        print(
            f"{our.concurrency:>11} | {'ours/theirs':<16} | {requests_ratio:>7.3f} | "
            f"{tokens_ratio:>9.3f} | {ttft_ratio:>11.3f}"
        )
    print("\ntargets: throughput ratio >= 0.95, TTFT ratio <= 1.05")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cpu-tiny.yaml")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=4, help="requests per unit of concurrency")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--lora", action="store_true", help="keep the profile's LoRA setting on")
    run_all(parser.parse_args())


if __name__ == "__main__":
    main()
