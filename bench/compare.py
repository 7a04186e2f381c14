"""Benchmark workers-ai-local against vLLM's own OpenAI-compatible server on the same model.

Both servers run the same tiny checkpoint with the same engine settings, both up at once; each
concurrency level is measured in alternating rounds (ours then theirs, theirs then ours, ...), so
that this shared machine's drifts hit both alike, and one server is idle while the other is
measured. Each round sends both the same streamed chat requests; we print ratios ours/theirs of
output tokens/s and p50 time to first token, as medians over pairs of rounds of both orders
(`bench.rounds`: the order's own effect cancels within a pair), and each API
process's own CPU time per output token (engine processes excluded): what limits a GPU box at
high concurrency. Run: `make bench` (or `python -m bench.compare --help`).
"""

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.rounds import even_rounds, median, paired_ratios
from bench.servers import serve_command, started
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
    longest_gap_s: float = 0.0  # between two events of the stream, as the client saw them


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

    @property
    def longest_gap_ms(self) -> float:
        """The longest a stream of this run waited between two events: a server's stalls."""
        return max(sample.longest_gap_s for sample in self.samples) * 1000


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
        return chat_event(event)


def chat_event(event: dict[str, object]) -> tuple[str, int | None]:
    """The text of one streamed `/v1/chat/completions` chunk (its content or reasoning) and, on
    the usage chunk, the output tokens."""
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
    last_event = start
    longest_gap = 0.0
    async with client.stream("POST", target.base_url + path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            now = time.perf_counter()
            if ttft is not None:
                longest_gap = max(longest_gap, now - last_event)
            last_event = now
            text, count = target.parse(json.loads(line[6:]))
            if text and ttft is None:
                ttft = time.perf_counter() - start
            if count is not None:
                tokens = count
    return Sample(
        ttft_s=ttft if ttft is not None else time.perf_counter() - start,
        output_tokens=tokens,
        longest_gap_s=longest_gap,
    )


def arrivals(requests: int, rate: float | None, seed: int = 0) -> list[float]:
    """When each request is sent, in seconds from the first: all at once (`rate` None: a
    closed loop, each sent as one ends), or a Poisson process of `rate` a second, the same
    for every path (`vllm bench serve --request-rate` draws them so)."""
    if rate is None:
        return [0.0] * requests
    draw = random.Random(seed)
    times, now = [], 0.0
    for _ in range(requests):
        times.append(now)
        now += draw.expovariate(rate)
    return times


def output_lengths(requests: int, max_tokens: int, range_ratio: float, seed: int = 0) -> list[int]:
    """Each request's max_tokens: `max_tokens` for all (`range_ratio` 0), or drawn evenly
    between max_tokens × (1 - range_ratio) and × (1 + range_ratio), at least 1, the same for
    every path (as `vllm bench serve --random-range-ratio` draws output lengths). Equal
    lengths make a closed loop's requests end, and come back, together."""
    if not 0 <= range_ratio < 1:
        raise ValueError("range_ratio must be at least 0 and below 1")
    if range_ratio == 0:
        return [max_tokens] * requests
    draw = random.Random(seed)
    low = max(round(max_tokens * (1 - range_ratio)), 1)
    high = max(round(max_tokens * (1 + range_ratio)), low)
    return [draw.randint(low, high) for _ in range(requests)]


async def load(
    target: Target,
    concurrency: int,
    requests: int,
    max_tokens: int,
    after_warm_up: Callable[[], None] | None = None,
    request_rate: float | None = None,
    range_ratio: float = 0.0,
) -> Run:
    """`requests` streamed requests, at most `concurrency` at a time, after two short warm-up
    ones; sent as soon as one ends, or at `request_rate` a second (Poisson arrivals); each
    asks for `max_tokens`, or for lengths spread by `range_ratio` (`output_lengths`).
    `after_warm_up` is called between the warm-up and the measured ones."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=600, limits=limits) as client:
        for index in range(2):  # warm-up
            await one_request(client, target, f"warm up {index}", 8)
        if after_warm_up is not None:
            after_warm_up()
        # The client's own startup heap out of its collector's reach: a full collection of
        # it would stall every stream here and read as the server's (`longest_gap_ms`).
        gc.collect()
        gc.freeze()
        gate = asyncio.Semaphore(concurrency)
        schedule = arrivals(requests, request_rate)
        lengths = output_lengths(requests, max_tokens, range_ratio)

        async def gated(index: int) -> Sample:
            await asyncio.sleep(start + schedule[index] - time.perf_counter())
            async with gate:
                prompt = f"Request {index}: explain topic number {index} in detail."
                return await one_request(client, target, prompt, lengths[index])

        start = time.perf_counter()
        samples = await asyncio.gather(*(gated(index) for index in range(requests)))
        wall = time.perf_counter() - start
    return Run(concurrency, requests, wall, list(samples))


def bench_config(source: Path, workdir: Path, lora: bool) -> tuple[Path, Path, EngineConfig]:
    """A one-model config for ours, and the checkpoint and engine settings both servers use."""
    settings = load_settings(source)
    model = next(model for model in settings.models if model.name == MODEL)
    # LoRA off unless asked: on the CPU build every request then runs through an adapter
    # (see engine/vllm/lora.py), which measures that workaround rather than the server.
    engine = model.local_engine.model_copy(update={"enable_lora": lora})
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


@dataclass(frozen=True)
class Measured:
    """One load run on one server, and the CPU its API process (children excluded) spent."""

    run: Run
    api_cpu_s: float

    @property
    def cpu_ms_per_token(self) -> float:
        tokens = sum(sample.output_tokens for sample in self.run.samples)
        return self.api_cpu_s * 1000 / max(tokens, 1)


def measure(
    target: Target, process: psutil.Process, concurrency: int, args: argparse.Namespace
) -> Measured:
    before = process.cpu_times()
    run = asyncio.run(load(target, concurrency, args.requests * concurrency, args.max_tokens))
    after = process.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return Measured(run, cpu)


def run_all(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    config, checkpoint, engine = bench_config(args.config, workdir, args.lora)
    env = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN, "VLLM_TARGET_DEVICE": "cpu"}
    theirs_port, ours_port = args.port, args.port + 1
    theirs_cmd = [
        sys.executable, "-m", "bench.vllm_launcher", "serve", str(checkpoint),
        "--port", str(theirs_port), "--served-model-name", "tiny", "--disable-uvicorn-access-log",
        *vllm_serve_flags(engine_args(engine, str(checkpoint), cpu=is_cpu_build())),
    ]  # fmt: skip
    targets = (
        Theirs("vllm serve", f"http://127.0.0.1:{theirs_port}"),
        Ours("workers-ai-local", f"http://127.0.0.1:{ours_port}"),
    )
    commands = (theirs_cmd, serve_command(config, ours_port))
    results: dict[int, list[tuple[Measured, Measured]]] = {}
    with ExitStack() as servers:
        # Both up at once, each idle while the other is measured: rounds alternate (ABAB),
        # so slow drifts of this shared machine hit both servers alike.
        processes = []
        for target, command in zip(targets, commands, strict=True):
            print(f"starting {target.name} ...", flush=True)
            log = workdir / f"{target.name.replace(' ', '-')}.log"
            popen = servers.enter_context(started(command, target.base_url + "/health", log, env))
            processes.append(psutil.Process(popen.pid))
        for concurrency in args.concurrency:
            results[concurrency] = []
            for round_number in range(args.rounds):
                order = [0, 1] if round_number % 2 == 0 else [1, 0]
                measured: dict[int, Measured] = {}
                for index in order:
                    measured[index] = measure(targets[index], processes[index], concurrency, args)
                results[concurrency].append((measured[0], measured[1]))
                print(f"  concurrency {concurrency}, round {round_number + 1} done", flush=True)
    report(results, args)


def report(results: dict[int, list[tuple[Measured, Measured]]], args: argparse.Namespace) -> None:
    print(f"\nmodel: tiny random-weight Qwen2 ({MODEL} tokenizer)")
    print(
        f"streaming chat requests, max_tokens={args.max_tokens}, temperature 0, "
        f"{args.rounds} alternating rounds per concurrency; ratios: medians over pairs of rounds "
        "(range: of the pairs)"
    )
    header = (
        f"{'concurrency':>11} | {'throughput ours/theirs':>22} | {'p50 TTFT ours/theirs':>20} | "
        f"{'API CPU ms/token ours':>21} | {'theirs':>6}"
    )
    print(header)
    print("-" * len(header))
    for concurrency, rounds in results.items():
        throughputs = paired_ratios(
            [our.run.output_tokens_per_s / their.run.output_tokens_per_s for their, our in rounds]
        )
        ttfts = paired_ratios(
            [our.run.p50_ttft_ms / their.run.p50_ttft_ms for their, our in rounds]
        )
        our_cpu = statistics.median(our.cpu_ms_per_token for _, our in rounds)
        their_cpu = statistics.median(their.cpu_ms_per_token for their, _ in rounds)
        print(
            f"{concurrency:>11} | {median(throughputs):>8.3f} "
            f"({min(throughputs):.2f}-{max(throughputs):.2f}) | {median(ttfts):>20.3f} | "
            f"{our_cpu:>21.2f} | {their_cpu:>6.2f}"
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
    parser.add_argument(
        "--rounds", type=even_rounds, default=8, help="alternating rounds per concurrency (even)"
    )
    run_all(parser.parse_args())


if __name__ == "__main__":
    main()
