"""Benchmark remote mode: workers-ai-local in front of a vllm-router, against clients that call
the same router directly.

    ours:    client -> workers-ai-local (remote mode) -> vllm-router -> vllm serve x 2
    direct:  client ----------------------------------> vllm-router -> vllm serve x 2

Both paths run at once on the same replicas and router (tiny QwQ stand-in, CPU build, LoRA
off). Each concurrency level is measured in alternating rounds (ours then direct, direct then
ours, ...), so that this shared machine's drifts hit both alike. Each round sends both the same
streamed requests: ours a chat request; direct the very token ids our server renders and
tokenizes for it (checked before measuring) to `/v1/completions`, with the same max_tokens,
temperature 0 and ignore_eos. We print ratios ours/direct of output tokens/s and p50 time to
first token and the p50 TTFT difference in ms, as medians over pairs of rounds of both orders
(`bench.rounds`: the order's own effect cancels within a pair), and the CPU time per output
token of our server's process (psutil) and of the router. The replicas' own time to first token
(their metrics) is taken out of each path's mean time to first token, which leaves the time each
way there and back adds, free of the replicas' queueing; our server's own metrics give the part
it spends preparing each request before the upstream sees it.
On this CPU build the engines compute on the cores the HTTP processes need; `--engines-behind`
(root) puts them in a CPU cgroup of the least weight, so that the HTTP processes of both paths
run first, as beside GPUs (`bench.machine.engines_behind`). `--engine-cores 0.8` also caps them
at 0.8 cores' worth of CPU time, so that they generate at the same pace whichever path feeds
them, as GPUs do: the throughput ratio then shows what this server adds in time, no longer the
CPU it takes from the engines. `--bare-relay` adds a third path to every round, between the
other two: the direct requests through `bench.bare_relay` (uvicorn and aiohttp relaying bytes,
nothing else) in front of the router, what any Python HTTP hop adds on this machine.
At concurrency 1 the replicas' pace swings by a fifth from one request to the next, more than the
paths differ: `--concurrency 1 --requests 1 --rounds 60` alternates the paths request by request,
and the 90% interval printed beside each median says whether it is clear of a target.
Requests are sent in a closed loop (each as one ends: equal requests end together, so a
concurrency level's requests arrive in bursts), or with `--request-rate R` at Poisson arrivals of
R a second, the same times for both paths, with `--concurrency` as the most at once (as
`vllm bench serve --request-rate` with `--max-concurrency`).
`--direct chat` has the direct path send the chat messages to `/v1/chat/completions` instead, as
clients of vLLM's own API do: the replica that takes a request then renders the chat template
and tokenizes it in its API server, the work our server does for its requests (the prompt is the
same: checked the same way).
`--random-range-ratio F` spreads the requests' lengths: each asks for a number of tokens drawn
evenly between max_tokens × (1 - F) and × (1 + F), the same for both paths, so that a closed
loop's requests no longer end together.
Run: `python -m bench.remote` (`--help` for options).
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.compare import MODEL, TOKEN, Ours, Target, chat_event, load
from bench.machine import cpu_s, engines_behind, remove_engines_cgroup
from bench.remote_report import Measured, describe, report
from bench.rounds import alternating, even_rounds
from bench.servers import serve_command, started
from tests.support.upstream import ReplicaSpec, remote_model, replicas, router

SERVED = "tiny-qwq"


class Direct(Target):
    """`/v1/completions` on the router with the token ids our server would send upstream."""

    def __init__(self, name: str, base_url: str, cache_dir: Path) -> None:
        super().__init__(name, base_url)
        from chat_templates import ChatTemplate
        from engine.remote.checkpoint import load_checkpoint
        from server.generation.specs import MODELS

        self._template = ChatTemplate.builtin(MODELS[MODEL].template)
        self._tokenizer = load_checkpoint("tiny-qwq-32b", cache_dir).tokenizer

    def prompt_ids(self, prompt: str) -> list[int]:
        text = self._template.render([{"role": "user", "content": prompt}])
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False)
        return ids

    def request(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, object]]:
        body = {
            "model": SERVED,
            "prompt": self.prompt_ids(prompt),
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return "/v1/completions", body

    def parse(self, event: dict[str, object]) -> tuple[str, int | None]:
        return completion_event(event)


class DirectChat(Target):
    """`/v1/chat/completions` on the router, the same conversation as a client of vLLM would
    send it: the replica that takes it renders the checkpoint's chat template and tokenizes."""

    def request(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, object]]:
        body = {
            "model": SERVED,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return "/v1/chat/completions", body

    def parse(self, event: dict[str, object]) -> tuple[str, int | None]:
        return chat_event(event)


def direct_target(kind: str, name: str, base_url: str, cache_dir: Path) -> Target:
    """The direct path's client: token ids (`Direct`) or chat messages (`DirectChat`)."""
    return Direct(name, base_url, cache_dir) if kind == "tokens" else DirectChat(name, base_url)


def completion_event(event: dict[str, object]) -> tuple[str, int | None]:
    """The text of one streamed `/v1/completions` chunk and, on a usage chunk, the output tokens."""
    usage = event.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    choices = event.get("choices")
    text = ""
    if isinstance(choices, list) and choices:
        text = str(choices[0].get("text") or "")
    return text, tokens


def histogram(urls: list[str], name: str) -> tuple[float, float]:
    """The histogram `name` summed over the `/metrics` of these servers: (sum, count)."""
    total, count = 0.0, 0.0
    for url in urls:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name != name:
                continue
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
    return total, count


@dataclass(frozen=True)
class Histograms:
    """Sums and counts of the time-to-first-token histograms this benchmark reads."""

    replicas_ttft: tuple[float, float]
    our_ttft: tuple[float, float]
    our_upstream_wait: tuple[float, float]

    @classmethod
    def read(cls, replica_urls: list[str], ours: str) -> "Histograms":
        return cls(
            histogram(replica_urls, "vllm:time_to_first_token_seconds"),
            histogram([ours], "workers_ai_local_time_to_first_token_seconds"),
            histogram([ours], "workers_ai_local_queue_wait_seconds"),
        )


def mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """The mean of the observations between two readings of a histogram, in ms."""
    count = after[1] - before[1]
    return None if count == 0 else (after[0] - before[0]) * 1000 / count


def measure(
    target: Target,
    gateway: psutil.Process,
    front: psutil.Process,
    replica_urls: list[str],
    ours_url: str,
    concurrency: int,
    args: Any,
) -> Measured:
    start: dict[str, Any] = {}

    def mark_start() -> None:  # after the warm-up requests: only measured ones are counted
        start.update(
            cpu=(cpu_s(gateway), cpu_s(front)), histograms=Histograms.read(replica_urls, ours_url)
        )

    requests = args.requests * concurrency
    run = asyncio.run(
        load(
            target,
            concurrency,
            requests,
            args.max_tokens,
            mark_start,
            args.request_rate,
            args.random_range_ratio,
        )
    )
    before, after = start["histograms"], Histograms.read(replica_urls, ours_url)
    counted = after.replicas_ttft[1] - before.replicas_ttft[1]
    if counted != requests:
        raise SystemExit(f"the replicas counted {counted:.0f} requests, not {requests}")
    replica_ms = mean_ms(before.replicas_ttft, after.replicas_ttft)
    assert replica_ms is not None
    our_ttft = mean_ms(before.our_ttft, after.our_ttft)
    our_wait = mean_ms(before.our_upstream_wait, after.our_upstream_wait)
    return Measured(
        run,
        cpu_s(gateway) - start["cpu"][0],
        cpu_s(front) - start["cpu"][1],
        replica_ms,
        None if our_ttft is None or our_wait is None else our_ttft - our_wait,
    )


def check_equivalent(ours: Ours, direct: Target) -> None:
    """The same prompt both ways must give the same greedy text: the same request upstream."""

    async def text_of(client: httpx.AsyncClient, target: Target) -> str:
        path, body = target.request("Is this the same request?", 32)
        response = await client.post(target.base_url + path, json=body)
        response.raise_for_status()
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
        return "".join(target.parse(json.loads(event))[0] for event in events)

    async def both() -> tuple[str, str]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(headers=headers, timeout=120) as client:
            return await text_of(client, ours), await text_of(client, direct)

    our_text, direct_text = asyncio.run(both())
    if our_text != direct_text:
        raise SystemExit(f"not the same request: ours {our_text!r}, direct {direct_text!r}")
    print(f"same request both ways: {our_text[:40]!r}...", flush=True)


def run_all(args: argparse.Namespace) -> None:
    from server.settings import DEFAULT_CACHE_DIR

    cache_dir = DEFAULT_CACHE_DIR.expanduser()
    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    spec = ReplicaSpec(
        "tiny-qwq-32b", SERVED, max_model_len=24000, max_num_seqs=16, max_queued=256, lora=False
    )
    env = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN}
    # Per concurrency, per round: ours, direct (and the bare relay), in that order.
    results: dict[int, list[tuple[Measured, ...]]] = {}
    with ExitStack() as stack:
        if args.engine_cores is not None:
            args.engines_behind = True
        if args.engines_behind:
            stack.callback(remove_engines_cgroup)  # after the replicas have stopped
        print("starting 2 replicas and vllm-router ...", flush=True)
        qwq = stack.enter_context(replicas([spec, spec], cache_dir, work / "published", work))
        front = stack.enter_context(router(qwq, work))
        if args.engines_behind:
            pids = [replica.process.pid for replica in qwq]
            print(engines_behind(pids, args.engine_cores), flush=True)
        config = work / "remote.yaml"
        config.write_text(json.dumps({"models": [remote_model(MODEL, front.url, spec, work)]}))
        print("starting workers-ai-local in remote mode ...", flush=True)
        ours = Ours("workers-ai-local", f"http://127.0.0.1:{args.port}")
        command = [*serve_command(config, args.port), "--workers", str(args.workers)]
        server = stack.enter_context(
            started(command, ours.base_url + "/health", work / "server.log", env)
        )
        direct = direct_target(args.direct, "direct", front.url, cache_dir)
        check_equivalent(ours, direct)
        targets: list[Target] = [ours, direct]
        gateways: dict[Target, psutil.Process] = {ours: psutil.Process(server.pid)}
        if args.bare_relay:
            relay_url = f"http://127.0.0.1:{args.relay_port}"
            relay = direct_target(args.direct, "bare relay", relay_url, cache_dir)
            command = [sys.executable, "-m", "bench.bare_relay", "--port", str(args.relay_port)]
            command += ["--upstream", front.url]
            relay_process = stack.enter_context(
                started(command, relay.base_url + "/health", work / "relay.log", env)
            )
            targets.append(relay)
            gateways[relay] = psutil.Process(relay_process.pid)
        front_process = psutil.Process(front.process.pid)
        replica_urls = [replica.url for replica in qwq]
        for concurrency in args.concurrency:
            results[concurrency] = []
            # Ours and direct first and last, then last and first: the comparison that matters
            # has both orders in every pair of rounds. The relay goes in between.
            paths = [0, 2, 1] if len(targets) == 3 else [0, 1]
            for round_number, order in enumerate(alternating(paths, args.rounds)):
                measured: dict[int, Measured] = {}
                for index in order:
                    measured[index] = measure(
                        targets[index],
                        gateways.get(targets[index], gateways[ours]),
                        front_process,
                        replica_urls,
                        ours.base_url,
                        concurrency,
                        args,
                    )
                results[concurrency].append(tuple(measured[i] for i in range(len(targets))))
                print(
                    f"  concurrency {concurrency}, round {round_number + 1}: "
                    + ", ".join(describe(targets[i].name, measured[i]) for i in order),
                    flush=True,
                )
    report(results, args)


def range_ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8797, help="our server's port")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=4, help="requests per unit of concurrency")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--rounds", type=even_rounds, default=8, help="alternating rounds per concurrency (even)"
    )
    parser.add_argument("--workers", type=int, default=1, help="our server's `--workers`")
    parser.add_argument(
        "--request-rate",
        type=float,
        metavar="R",
        help="send requests at R a second (Poisson arrivals, the same for both paths), with "
        "--concurrency as the most at once; default: a closed loop, each sent as one ends",
    )
    parser.add_argument(
        "--random-range-ratio",
        type=range_ratio,
        default=0.0,
        metavar="F",
        help="ask each request for between max_tokens × (1 - F) and × (1 + F) tokens (drawn "
        "evenly, the same for both paths), as `vllm bench serve --random-range-ratio`; default "
        "0: all the same length, so that a closed loop's requests end and come back together",
    )
    parser.add_argument(
        "--direct",
        choices=["tokens", "chat"],
        default="tokens",
        help="what the direct path sends the router: the token ids our server sends upstream "
        "(tokens: the replicas only generate), or the chat messages as vLLM's clients send "
        "them (chat: the replicas render the chat template and tokenize, as they do for any "
        "client of vLLM's own chat API)",
    )
    parser.add_argument(
        "--bare-relay",
        action="store_true",
        help="a third path in every round: the direct requests through bench.bare_relay",
    )
    parser.add_argument("--relay-port", type=int, default=8798, help="the bare relay's port")
    parser.add_argument(
        "--engines-behind",
        action="store_true",
        help="run the replicas' engines in a CPU cgroup of the least weight, so that the HTTP "
        "processes of both paths run first, as beside GPUs (root)",
    )
    parser.add_argument(
        "--engine-cores",
        type=float,
        default=None,
        metavar="N",
        help="--engines-behind, and the engines never use more than N cores' worth of CPU: "
        "they generate at the same pace whichever path feeds them, as GPUs do (root)",
    )
    run_all(parser.parse_args())


if __name__ == "__main__":
    main()
