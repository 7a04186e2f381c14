"""What `bench.remote` measures of one load run on one path, and the table it prints."""

import argparse
import statistics
from dataclasses import dataclass

from bench.compare import MODEL, Run
from bench.rounds import interval, median, paired_differences, paired_ratios


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


def describe(name: str, measured: Measured) -> str:
    run = measured.run
    return f"{name} {run.output_tokens_per_s:.0f} tokens/s, p50 TTFT {run.p50_ttft_ms:.1f} ms"


def report(results: dict[int, list[tuple[Measured, ...]]], args: argparse.Namespace) -> None:
    print(f"\nmodel: tiny random-weight Qwen2 ({MODEL} tokenizer), 2 replicas, vllm-router")
    if args.engine_cores is not None:
        print(f"engines: behind the HTTP processes, on at most {args.engine_cores:g} cores")
    elif args.engines_behind:
        print("engines: behind the HTTP processes, on every cycle they leave")
    if args.direct == "chat":
        print("direct: the same chat messages to /v1/chat/completions (the replicas template them)")
    else:
        print("direct: the token ids our server sends upstream, to /v1/completions")
    if args.request_rate is not None:
        print(
            f"arrivals: Poisson, {args.request_rate:g} requests/s, at most `conc.` at once "
            "(the same arrival times for both paths)"
        )
    if args.random_range_ratio:
        print(
            f"output lengths: drawn evenly within max_tokens × (1 ± {args.random_range_ratio:g}), "
            "the same for both paths"
        )
    print(
        f"streamed requests, max_tokens={args.max_tokens}, temperature 0, {args.rounds} "
        "alternating rounds per concurrency; medians over rounds (ratios and +ms: over pairs of "
        "rounds of both orders; 90% interval: of that median, bootstrapped over the pairs)"
    )
    header = (
        f"{'conc.':>5} | {'tokens/s ours':>13} | {'direct':>6} | {'ratio (90% interval)':>19} | "
        f"{'p50 TTFT ms ours':>16} | {'direct':>6} | {'ratio':>5} | {'+ms (90% interval)':>21} | "
        f"{'tokens/req':>10} | {'CPU ms/token gateway':>20} | {'router':>6} | "
        f"{'TTFT beyond replicas ms ours':>28} | {'direct':>6} | {'+ms':>6} | "
        f"{'preparing ms':>12}"
    )
    if args.bare_relay:
        header += (
            f" | {'bare relay: p50 +ms':>19} | {'beyond replicas +ms':>19} | {'CPU ms/token':>12}"
        )
    print(header)
    print("-" * len(header))
    for concurrency, rounds in results.items():
        ours, direct = [each[0] for each in rounds], [each[1] for each in rounds]
        pairs = list(zip(ours, direct, strict=True))
        ratios = paired_ratios(
            [a.run.output_tokens_per_s / b.run.output_tokens_per_s for a, b in pairs]
        )
        ttft_ratio = median(
            paired_ratios([a.run.p50_ttft_ms / b.run.p50_ttft_ms for a, b in pairs])
        )
        extras = paired_differences([a.run.p50_ttft_ms - b.run.p50_ttft_ms for a, b in pairs])
        extra_ms, (ratio_low, ratio_high), (extra_low, extra_high) = (
            median(extras),
            interval(ratios),
            interval(extras),
        )
        beyond = [a.beyond_replica_ms - b.beyond_replica_ms for a, b in pairs]
        tokens = [statistics.mean(s.output_tokens for m in side for s in m.run.samples)
                  for side in (ours, direct)]  # fmt: skip
        print(
            f"{concurrency:>5} | {median_of(ours, 'tokens/s'):>13.0f} | "
            f"{median_of(direct, 'tokens/s'):>6.0f} | {median(ratios):>5.3f} "
            f"({ratio_low:.3f}-{ratio_high:.3f}) | {median_of(ours, 'ttft'):>16.1f} | "
            f"{median_of(direct, 'ttft'):>6.1f} | {ttft_ratio:>5.2f} | {extra_ms:>+6.1f} "
            f"({extra_low:+.1f} to {extra_high:+.1f}) | "
            f"{tokens[0]:>4.0f}/{tokens[1]:<5.0f} | "
            f"{statistics.median(m.ms_per_token(m.gateway_cpu_s) for m in ours):>20.2f} | "
            f"{statistics.median(m.ms_per_token(m.router_cpu_s) for m in direct):>6.2f} | "
            f"{statistics.median(m.beyond_replica_ms for m in ours):>28.1f} | "
            f"{statistics.median(m.beyond_replica_ms for m in direct):>6.1f} | "
            f"{median(paired_differences(beyond)):>+6.1f} | "
            f"{statistics.median(m.preparing_ms or 0.0 for m in ours):>12.2f}"
            + (relay_columns([each[2] for each in rounds], direct) if args.bare_relay else "")
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
    if args.bare_relay:
        print(
            "bare relay: the direct requests through bench.bare_relay in front of the router; "
            "what it adds to direct (p50 TTFT and TTFT beyond replicas, as for ours) is what any "
            "Python HTTP hop adds here, and its CPU per output token."
        )
    print("targets: throughput ratio >= 0.95, p50 TTFT within 5 ms of direct")


def relay_columns(relay: list[Measured], direct: list[Measured]) -> str:
    """The bare relay's columns: its p50 TTFT and TTFT beyond the replicas less direct's, over
    pairs of rounds, and its CPU per output token."""
    pairs = list(zip(relay, direct, strict=True))
    extra_ms = median(paired_differences([a.run.p50_ttft_ms - b.run.p50_ttft_ms for a, b in pairs]))
    beyond = median(
        paired_differences([a.beyond_replica_ms - b.beyond_replica_ms for a, b in pairs])
    )
    cpu = statistics.median(m.ms_per_token(m.gateway_cpu_s) for m in relay)
    return f" | {extra_ms:>+19.1f} | {beyond:>+19.1f} | {cpu:>12.2f}"


def median_of(runs: list[Measured], what: str) -> float:
    if what == "tokens/s":
        return statistics.median(m.run.output_tokens_per_s for m in runs)
    return statistics.median(m.run.p50_ttft_ms for m in runs)
