"""Benchmark what remote mode costs this server itself: CPU per relayed token, time added.

    client -> workers-ai-local (remote mode) -> a steady stand-in for vLLM's /v1/completions

The stand-in (`upstream` below, plain asyncio in its own process) streams one token every
`--interval-ms` with vLLM 0.32's chunk shape (text, token_ids, continuous usage) and spends
almost no CPU, as a GPU replica leaves the host's cores to the gateway. So this measures the
gateway alone, without the replicas of `bench.remote` taking its cores.

Beside it, `bench.bare_relay`: uvicorn and aiohttp relaying the stand-in's bytes and doing
nothing else, the least any Python gateway adds on the machine. For each concurrency, `--rounds`
rounds each send `--requests` streamed requests per unit of concurrency to this server (chat
requests), to the bare relay and to the stand-in itself (this server and the stand-in first and
last, then last and first, the relay between). It prints this server's output tokens/s and p50
time to first token, what this server and the bare relay each add to it (medians over the rounds
of their p50 TTFT less the stand-in's own in the same round), the CPU time per output token of
this server (psutil, user + system, its `--workers` processes included) and of the bare relay,
and the longest any stream to this server waited between two events (the stand-in sends one
every `--interval-ms`: the rest is the gateway's, a stall of its event loop shows there).
Run: `python -m bench.gateway_cpu` (`--help` for options).
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
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.compare import MODEL, TOKEN, Ours, Target, load
from bench.machine import cpu_s
from bench.remote import completion_event
from bench.rounds import alternating
from bench.servers import serve_command, started

SERVED = "steady"


class Straight(Target):
    """The stand-in itself: the floor under any gateway's time to first token."""

    def request(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, object]]:
        body = {"model": SERVED, "prompt": [1, 2, 3], "max_tokens": max_tokens, "stream": True}
        return "/v1/completions", body

    def parse(self, event: dict[str, object]) -> tuple[str, int | None]:
        return completion_event(event)


def chunk(index: int, last: bool, token_ids: bool) -> bytes:
    """One streamed chunk as vLLM writes it, framed for chunked transfer encoding; with the
    token ids if the request asked for them (`return_token_ids`)."""
    event: dict[str, Any] = {
        "id": "cmpl-steady",
        "object": "text_completion",
        "created": 0,
        "model": SERVED,
        "choices": [
            {
                "index": 0,
                "text": " word",
                "logprobs": None,
                "finish_reason": "length" if last else None,
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 20, "total_tokens": 21 + index, "completion_tokens": index + 1},
    }
    if token_ids:
        event["choices"][0]["token_ids"] = [1879]
    data = b"data: " + json.dumps(event).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


async def answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, interval_s: float
) -> None:
    """Keep-alive HTTP/1.1: /v1/models lists the model, /v1/completions streams."""
    models = {"object": "list", "data": [{"id": SERVED, "root": SERVED, "max_model_len": 24000}]}
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            lengths = [
                line.split(":")[1] for line in head if line.lower().startswith("content-length:")
            ]
            length = int(lengths[0]) if lengths else 0
            body = json.loads(await reader.readexactly(length)) if length else {}
            if path != "/v1/completions":
                payload = json.dumps(models if path == "/v1/models" else {}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                writer.write(b"content-length: %d\r\n\r\n%s" % (len(payload), payload))
                await writer.drain()
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            tokens = int(body.get("max_tokens") or 16)
            for index in range(tokens):
                await asyncio.sleep(interval_s)
                writer.write(chunk(index, index == tokens - 1, bool(body.get("return_token_ids"))))
            done = b"data: [DONE]\n\n"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_upstream(port: int, interval_s: float) -> None:
    server = await asyncio.start_server(
        lambda reader, writer: answer(reader, writer, interval_s), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


def measure(
    target: Target, gateway: psutil.Process | None, concurrency: int, args: argparse.Namespace
) -> tuple[float, float, float, float]:
    """(output tokens/s, p50 TTFT ms, gateway CPU ms per output token, longest gap between two
    events ms) of one round."""
    before = cpu_s(gateway) if gateway else 0.0
    run = asyncio.run(load(target, concurrency, args.requests * concurrency, args.max_tokens))
    tokens = sum(sample.output_tokens for sample in run.samples)
    cpu_ms = 0.0
    if gateway is not None:
        cpu_ms = (cpu_s(gateway) - before) * 1000 / max(tokens, 1)
    return run.output_tokens_per_s, run.p50_ttft_ms, cpu_ms, run.longest_gap_ms


def run_all(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    upstream_url = f"http://127.0.0.1:{args.upstream_port}"
    command = [sys.executable, "-m", "bench.gateway_cpu", "--serve-upstream"]
    command += ["--upstream-port", str(args.upstream_port), "--interval-ms", str(args.interval_ms)]
    upstream = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(upstream_url + "/v1/models", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or upstream.poll() is not None:
                    raise SystemExit("the steady upstream did not start") from None
                time.sleep(0.2)
        remote = {"url": upstream_url, "served_model_name": SERVED, "tokenizer": "tiny-qwq-32b"}
        config = work / "remote.yaml"
        config.write_text(json.dumps({"models": [{"name": MODEL, "remote": remote}]}))
        env = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN}
        ours = Ours("workers-ai-local", f"http://127.0.0.1:{args.port}")
        command = [*serve_command(config, args.port), "--workers", str(args.workers)]
        relay = Straight("bare relay", f"http://127.0.0.1:{args.relay_port}")
        relay_command = [sys.executable, "-m", "bench.bare_relay", "--port", str(args.relay_port)]
        relay_command += ["--upstream", upstream_url]
        with (
            started(command, ours.base_url + "/health", work / "server.log", env) as server,
            started(relay_command, relay.base_url + "/health", work / "relay.log", env) as bare,
        ):
            gateways = {ours: psutil.Process(server.pid), relay: psutil.Process(bare.pid)}
            straight = Straight("steady upstream", upstream_url)
            print(
                f"steady upstream: a token every {args.interval_ms} ms, {args.max_tokens} tokens "
                f"a request, {args.requests} requests per unit of concurrency, "
                f"{args.rounds} rounds, {args.workers} worker(s)"
            )
            header = (
                f"{'conc.':>5} | {'tokens/s':>8} | {'p50 TTFT ms':>11} | "
                f"{'upstream alone':>14} | {'added ms':>8} | {'bare relay adds':>15} | "
                f"{'gateway CPU ms/token':>20} | {'bare relay CPU':>14} | {'longest gap ms':>14}"
            )
            print(header)
            print("-" * len(header))
            for concurrency in args.concurrency:
                rounds = [
                    measure_round(order, gateways, concurrency, args)
                    for order in alternating([ours, relay, straight], args.rounds)
                ]
                print(summary(concurrency, rounds, ours, relay, straight), flush=True)
    finally:
        upstream.terminate()
        upstream.wait()


Measured = tuple[float, float, float, float]  # what `measure` returns


def measure_round(
    order: list[Target],
    gateways: dict[Target, psutil.Process],
    concurrency: int,
    args: argparse.Namespace,
) -> dict[Target, Measured]:
    return {target: measure(target, gateways.get(target), concurrency, args) for target in order}


def summary(
    concurrency: int,
    rounds: list[dict[Target, Measured]],
    ours: Target,
    relay: Target,
    straight: Target,
) -> str:
    """One line: medians over the rounds; the times added are each round's p50 TTFT less the
    stand-in's own in the same round."""

    def median(target: Target, index: int) -> float:
        return statistics.median(measured[target][index] for measured in rounds)

    def added(target: Target) -> float:
        return statistics.median(measured[target][1] - measured[straight][1] for measured in rounds)

    longest_gap = max(measured[ours][3] for measured in rounds)
    return (
        f"{concurrency:>5} | {median(ours, 0):>8.0f} | {median(ours, 1):>11.1f} | "
        f"{median(straight, 1):>14.1f} | {added(ours):>+8.1f} | {added(relay):>+15.1f} | "
        f"{median(ours, 2):>20.3f} | {median(relay, 2):>14.3f} | {longest_gap:>14.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8796, help="our server's port")
    parser.add_argument("--upstream-port", type=int, default=8795)
    parser.add_argument("--relay-port", type=int, default=8797, help="the bare relay's port")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="between two tokens")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=4, help="requests per unit of concurrency")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="our server's `--workers`")
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(serve_upstream(args.upstream_port, args.interval_ms / 1000))
    else:
        run_all(args)


if __name__ == "__main__":
    main()
