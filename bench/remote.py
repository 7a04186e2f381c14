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
CPU it takes from the engines.
Run: `python -m bench.remote` (`--help` for options).
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.compare import MODEL, TOKEN, Ours, Run, Target, load
from bench.machine import cpu_s, engines_behind, remove_engines_cgroup
from bench.rounds import even_rounds, median, paired_differences, paired_ratios
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


def completion_event(event: dict[str, object]) -> tuple[str, int | None]:
    """The text of one streamed `/v1/completions` chunk and, on a usage chunk, the output tokens."""
    usage = event.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    choices = event.get("choices")
    text = ""
    if isinstance(choices, list) and choices:
        text = str(choices[0].get("text") or "")
    return text, tokens


@dataclass(frozen=True)
class Measured:
    """One load run on one path, the CPU our server and the router spent meanwhile, and the
    replicas' own mean time to first token of its requests."""

    run: Run
    gateway_cpu_s: float
    router_cpu_s: float
    replica_ttft_ms: float
    # Our server's mean time from a request's arrival until it is handed to the engine
    # (validated, templated, tokenized): its TTFT less its wait for the upstream's first token,
    # from its own metrics. None on the direct path.
    preparing_ms: float | None

    @property
    def beyond_replica_ms(self) -> float:
        """Mean time to first token as the client saw it, less the replicas' own (arrival at
        the replica to its first token): what the way there and back adds."""
        mean_ttft_ms = statistics.mean(sample.ttft_s for sample in self.run.samples) * 1000
        return mean_ttft_ms - self.replica_ttft_ms

    @property
    def tokens(self) -> int:
        return sum(sample.output_tokens for sample in self.run.samples)

    def ms_per_token(self, cpu_s: float) -> float:
        return cpu_s * 1000 / max(self.tokens, 1)


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
    run = asyncio.run(load(target, concurrency, requests, args.max_tokens, mark_start))
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


def check_equivalent(ours: Ours, direct: Direct) -> None:
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
    results: dict[int, list[tuple[Measured, Measured]]] = {}
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
        direct = Direct("direct", front.url, cache_dir)
        check_equivalent(ours, direct)
        gateway, front_process = psutil.Process(server.pid), psutil.Process(front.process.pid)
        targets = (ours, direct)
        replica_urls = [replica.url for replica in qwq]
        for concurrency in args.concurrency:
            results[concurrency] = []
            for round_number in range(args.rounds):
                order = [0, 1] if round_number % 2 == 0 else [1, 0]
                measured: dict[int, Measured] = {}
                for index in order:
                    measured[index] = measure(
                        targets[index],
                        gateway,
                        front_process,
                        replica_urls,
                        ours.base_url,
                        concurrency,
                        args,
                    )
                results[concurrency].append((measured[0], measured[1]))
                print(
                    f"  concurrency {concurrency}, round {round_number + 1}: "
                    + ", ".join(describe(targets[i].name, measured[i]) for i in order),
                    flush=True,
                )
    report(results, args)


def describe(name: str, measured: Measured) -> str:
    run = measured.run
    return f"{name} {run.output_tokens_per_s:.0f} tokens/s, p50 TTFT {run.p50_ttft_ms:.1f} ms"


def report(results: dict[int, list[tuple[Measured, Measured]]], args: argparse.Namespace) -> None:
    print(f"\nmodel: tiny random-weight Qwen2 ({MODEL} tokenizer), 2 replicas, vllm-router")
    if args.engine_cores is not None:
        print(f"engines: behind the HTTP processes, on at most {args.engine_cores:g} cores")
    elif args.engines_behind:
        print("engines: behind the HTTP processes, on every cycle they leave")
    print(
        f"streamed requests, max_tokens={args.max_tokens}, temperature 0, {args.rounds} "
        "alternating rounds per concurrency; medians over rounds (ratios and +ms: over pairs of "
        "rounds of both orders; range: of the pairs)"
    )
    header = (
        f"{'conc.':>5} | {'tokens/s ours':>13} | {'direct':>6} | {'ratio (range)':>17} | "
        f"{'p50 TTFT ms ours':>16} | {'direct':>6} | {'ratio':>5} | {'+ms':>6} | "
        f"{'tokens/req':>10} | {'CPU ms/token gateway':>20} | {'router':>6} | "
        f"{'TTFT beyond replicas ms ours':>28} | {'direct':>6} | {'+ms':>6} | "
        f"{'preparing ms':>12}"
    )
    print(header)
    print("-" * len(header))
    for concurrency, rounds in results.items():
        ours, direct = [pair[0] for pair in rounds], [pair[1] for pair in rounds]
        ratios = paired_ratios(
            [a.run.output_tokens_per_s / b.run.output_tokens_per_s for a, b in rounds]
        )
        ttft_ratio = median(
            paired_ratios([a.run.p50_ttft_ms / b.run.p50_ttft_ms for a, b in rounds])
        )
        extra_ms = median(
            paired_differences([a.run.p50_ttft_ms - b.run.p50_ttft_ms for a, b in rounds])
        )
        beyond = [a.beyond_replica_ms - b.beyond_replica_ms for a, b in rounds]
        tokens = [statistics.mean(s.output_tokens for m in side for s in m.run.samples)
                  for side in (ours, direct)]  # fmt: skip
        print(
            f"{concurrency:>5} | {median_of(ours, 'tokens/s'):>13.0f} | "
            f"{median_of(direct, 'tokens/s'):>6.0f} | {median(ratios):>5.3f} "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {median_of(ours, 'ttft'):>16.1f} | "
            f"{median_of(direct, 'ttft'):>6.1f} | {ttft_ratio:>5.2f} | {extra_ms:>+6.1f} | "
            f"{tokens[0]:>4.0f}/{tokens[1]:<5.0f} | "
            f"{statistics.median(m.ms_per_token(m.gateway_cpu_s) for m in ours):>20.2f} | "
            f"{statistics.median(m.ms_per_token(m.router_cpu_s) for m in direct):>6.2f} | "
            f"{statistics.median(m.beyond_replica_ms for m in ours):>28.1f} | "
            f"{statistics.median(m.beyond_replica_ms for m in direct):>6.1f} | "
            f"{median(paired_differences(beyond)):>+6.1f} | "
            f"{statistics.median(m.preparing_ms or 0.0 for m in ours):>12.2f}"
        )
    print(
        "\nTTFT beyond replicas: the mean time to first token each client saw, less the "
        "replicas' own mean (vllm:time_to_first_token_seconds: arrival at the replica to its "
        "first token), so the replicas' queueing, which swings between rounds, cancels: what the "
        "way there and back adds (our server, the router, the replicas' API servers)."
    )
    print(
        "preparing: our server's mean time from a request's arrival until the upstream request "
        "(validating, templating, tokenizing), from its own metrics."
    )
    print("targets: throughput ratio >= 0.95, p50 TTFT within 5 ms of direct")


def median_of(runs: list[Measured], what: str) -> float:
    if what == "tokens/s":
        return statistics.median(m.run.output_tokens_per_s for m in runs)
    return statistics.median(m.run.p50_ttft_ms for m in runs)


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
