"""Load and soak: many streams, clients that leave, and an overload burst, for several rounds.

Each round, on the real server (`configs/cpu-tiny.yaml`, both tiny models):
- `--streams` streams at once, spread over both models; a random `--leave` share of them hang up
  after a random number of events, the others read to the end;
- then a burst of twice the first model's admission limit (running + waiting, read from the
  startup log) of short requests at once: past the limit they must get 429/3040, fast.
It prints, per round and in all: responses with a 5xx status, streams read to the end that did
not end with `data: [DONE]`, 429/3040 answers and their p99 latency (at the client, and inside
the server from its access log), requests the engines still
report running once things settle, and the server's RSS after each round (target: growth
from the end of the first round, which warms caches and pools up, to the end of the last
under 5%).

    python -m bench.soak [--rounds 5] [--streams 300] [--leave 0.3]
"""

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.servers import REPO, serve_command, started

MODELS = ("@cf/qwen/qwq-32b", "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b")
TOKEN = "bench-token"
ADMISSION = re.compile(r"(\S+): (\d+) requests run at once, (\d+) more may wait")
# The server's access line of a 429/3040: its own time, from the request's arrival to the answer.
REFUSED_LINE = re.compile(r" 429 .*error_code=3040 .*latency_ms=([\d.]+)")


@dataclass
class Tally:
    server_errors: int = 0
    unfinished_streams: int = 0
    finished_streams: int = 0
    left_streams: int = 0
    refused: int = 0
    refused_latency_ms: list[float] = field(default_factory=list)
    burst_ok: int = 0
    still_running: int = 0
    transport_errors: int = 0

    def add(self, other: "Tally") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


async def one_stream(client: httpx.AsyncClient, model: str, leave_after: int | None) -> Tally:
    tally = Tally()
    body = {"prompt": "Tell me a story", "max_tokens": 24, "stream": True}
    async with client.stream("POST", f"/client/v4/accounts/a/ai/run/{model}", json=body) as answer:
        if answer.status_code >= 500:
            tally.server_errors += 1
            return tally
        if answer.status_code != 200:
            return tally
        events, last = 0, ""
        async for line in answer.aiter_lines():
            if not line.startswith("data: "):
                continue
            events, last = events + 1, line
            if leave_after is not None and events >= leave_after:
                tally.left_streams += 1
                return tally  # leaving the block closes the connection mid-stream
        if last == "data: [DONE]":
            tally.finished_streams += 1
        else:
            tally.unfinished_streams += 1
    return tally


async def one_short(base_url: str, model: str) -> Tally:
    """One short request on its own connection, written and read with bare asyncio streams:
    an HTTP client library costs milliseconds of this process's CPU per request, which would
    count, for hundreds at once on a small machine, as latency the server did not cause."""
    tally = Tally()
    url = httpx.URL(base_url)
    body = json.dumps({"prompt": "Hi", "max_tokens": 4}).encode()
    request = (
        f"POST /client/v4/accounts/a/ai/run/{model} HTTP/1.1\r\n"
        f"Host: {url.host}:{url.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(request)
        answer = await reader.read()  # to the end: the server closes the connection
        writer.close()
    except OSError as error:
        tally.transport_errors += 1
        print(f"connection error: {type(error).__name__}: {error}", flush=True)
        return tally
    elapsed_ms = (time.perf_counter() - start) * 1000
    head, _, content = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status >= 500 or status == 0:
        tally.server_errors += 1
    elif status == 429 and json.loads(content)["errors"][0]["code"] == 3040:
        tally.refused += 1
        tally.refused_latency_ms.append(elapsed_ms)
    elif status == 200:
        tally.burst_ok += 1
    return tally


async def still_running(client: httpx.AsyncClient, settle_s: float = 30) -> int:
    """Requests the engines report once they have had `settle_s` to finish or abort."""
    deadline = time.monotonic() + settle_s
    while True:
        models = (await client.get("/health")).json()["models"]
        running = sum(model["running_requests"] for model in models.values())
        if running == 0 or time.monotonic() > deadline:
            return int(running)
        await asyncio.sleep(0.5)


async def one_round(base_url: str, streams: int, leave: float, burst: int, seed: int) -> Tally:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=max(streams, burst) + 8)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=httpx.Timeout(600)
    ) as client:
        tally = Tally()
        jobs = [
            one_stream(
                client, MODELS[index % 2], rng.randint(1, 10) if rng.random() < leave else None
            )
            for index in range(streams)
        ]
        for result in await asyncio.gather(*jobs):
            tally.add(result)
        for result in await asyncio.gather(*(one_short(base_url, MODELS[0]) for _ in range(burst))):
            tally.add(result)
        tally.still_running = await still_running(client)
    return tally


def admission_limit(log: Path, model: str) -> int:
    for match in ADMISSION.finditer(log.read_text(errors="replace")):
        if match[1] == model:
            return int(match[2]) + int(match[3])
    raise RuntimeError(f"no admission line for {model} in {log}")


def refused_in_server_ms(log: Path) -> list[float]:
    """The server's own latency of each 429/3040 it logged."""
    return [float(m[1]) for m in REFUSED_LINE.finditer(log.read_text(errors="replace"))]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def line(name: str, tally: Tally) -> str:
    return (
        f"{name:7} 5xx {tally.server_errors:4d}   streams: done {tally.finished_streams:5d}, "
        f"left {tally.left_streams:4d}, no [DONE] {tally.unfinished_streams:3d}   "
        f"burst: ok {tally.burst_ok:4d}, 429/3040 {tally.refused:4d} "
        f"(p99 at the client {p99(tally.refused_latency_ms):6.1f} ms)   "
        f"still running {tally.still_running}   "
        f"connection errors {tally.transport_errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--leave", type=float, default=0.3, help="share of streams that hang up")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cpu-tiny.yaml")
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp()) / "server.log"
    base_url = f"http://127.0.0.1:{args.port}"
    environment = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN}
    # INFO: the startup log says each model's admission limit.
    command = serve_command(args.config, args.port, log_level="info")
    with started(command, base_url + "/health", log, environment) as process:
        server = psutil.Process(process.pid)
        burst = 2 * admission_limit(log, MODELS[0])
        print(
            f"{args.rounds} rounds: {args.streams} streams ({args.leave:.0%} leave early), "
            f"then a burst of {burst} requests (twice {MODELS[0]}'s admission limit)"
        )
        rss = [server.memory_info().rss]
        total = Tally()
        for number in range(args.rounds):
            tally = asyncio.run(one_round(base_url, args.streams, args.leave, burst, seed=number))
            rss.append(server.memory_info().rss)
            print(line(f"round {number + 1}", tally))
            total.add(tally)
    print(line("all", total))
    inside = refused_in_server_ms(log)
    print(
        f"429/3040 latency inside the server (its access log), {len(inside)} answers: "
        f"p50 {statistics.median(inside) if inside else float('nan'):.1f} ms, "
        f"p99 {p99(inside):.1f} ms"
    )
    # The first round warms caches and pools up; growth is measured from its end.
    mib = " -> ".join(f"{value / 2**20:.0f}" for value in rss)
    growth = (rss[-1] - rss[1]) / rss[1]
    print(f"server RSS (MiB): start, then after each round: {mib}")
    print(f"growth after round 1 to the end: {growth:+.1%} (target under +5%)")


if __name__ == "__main__":
    main()
