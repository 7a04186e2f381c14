"""How long live streams stall while very long prompts arrive.

`--streams` streams generate on QwQ (tiny checkpoints, `configs/cpu-tiny.yaml`) and never end on
their own. For a baseline window nothing else happens; then `--prompts` prompts of about 85000
tokens arrive at R1-distill, one after the other. They are over its 80000-token window, so the
server templates and tokenizes each one and answers 413 (code 5021): the engines never see them,
and what the streams feel is the server's own work on those bodies. For every stream we record
the gap between consecutive SSE events and print p50, p99 and the largest gap of each window.

Run it on two checkouts to compare them (the server is started from `--repo`):

    python -m bench.stream_gaps                     # this checkout
    python -m bench.stream_gaps --repo /tmp/before  # e.g. a `git worktree` of an older commit
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.servers import serve_command, started

REPO = Path(__file__).resolve().parents[1]
QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
TOKEN = "bench-token"
ENDLESS = {"type": "array", "minItems": 5000, "items": {"type": "integer"}}
# Words the tiny tokenizer splits into about one token each (checked at run time).
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing "


@dataclass
class Gaps:
    """Gaps between consecutive events of every stream, filed by the window they ended in."""

    baseline: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    loading: bool = False

    def add(self, gap_s: float) -> None:
        (self.load if self.loading else self.baseline).append(gap_s * 1000)


async def stream(client: httpx.AsyncClient, gaps: Gaps, stop: asyncio.Event) -> None:
    body = {
        "prompt": "Count",
        "max_tokens": 20000,
        "temperature": 0,
        "guided_json": ENDLESS,
        "stream": True,
    }
    async with client.stream("POST", f"/client/v4/accounts/a/ai/run/{QWQ}", json=body) as answer:
        assert answer.status_code == 200, await answer.aread()
        last = None
        async for line in answer.aiter_lines():
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            if last is not None:
                gaps.add(now - last)
            last = now
            if stop.is_set():
                return


def long_prompt(tokens: int) -> str:
    """About `tokens` tokens of the tiny tokenizer (R1-distill's template adds a few)."""
    from transformers import AutoTokenizer

    from engine.builtin.checkpoints import prepare_checkpoint
    from server.settings import load_settings

    settings = load_settings(REPO / "configs" / "cpu-tiny.yaml")
    builtin = next(model.local_engine.builtin for model in settings.models if model.name == R1)
    assert builtin is not None
    tokenizer = AutoTokenizer.from_pretrained(
        prepare_checkpoint(builtin, settings.resolved_cache_dir())
    )
    per_copy = len(tokenizer.encode(WORDS, add_special_tokens=False))
    return WORDS * (tokens // per_copy + 1)


async def measure(
    base_url: str, streams: int, prompts: int, baseline_s: float, prompt: str
) -> Gaps:
    gaps = Gaps()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=streams + 4)
    timeout = httpx.Timeout(600)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=timeout
    ) as client:
        tasks = [asyncio.create_task(stream(client, gaps, stop)) for _ in range(streams)]
        await asyncio.sleep(baseline_s)
        gaps.loading = True
        for _ in range(prompts):
            answer = await client.post(
                f"/client/v4/accounts/a/ai/run/{R1}", json={"prompt": prompt}
            )
            assert answer.status_code == 413, answer.text
        gaps.loading = False
        stop.set()
        await asyncio.gather(*tasks)
    return gaps


def summary(name: str, values: list[float]) -> str:
    if len(values) < 2:
        return f"{name:9} (too few events)"
    p99 = statistics.quantiles(values, n=100)[98]
    return (
        f"{name:9} events {len(values):6d}   p50 {statistics.median(values):7.1f} ms   "
        f"p99 {p99:7.1f} ms   max {max(values):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose server to start")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=85000, help="tokens per long prompt")
    parser.add_argument("--baseline-s", type=float, default=5.0)
    args = parser.parse_args()

    prompt = long_prompt(args.tokens)
    print(
        f"{args.streams} streams on {QWQ}; {args.prompts} prompts of ~{args.tokens} tokens "
        f"({len(prompt.encode()) / 2**20:.2f} MiB) to {R1}; server from {args.repo}"
    )
    repo = args.repo.resolve()
    base_url = f"http://127.0.0.1:{args.port}"
    command = serve_command(repo / "configs" / "cpu-tiny.yaml", args.port)
    environment = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN}
    log = Path(tempfile.mkdtemp()) / "server.log"
    with started(command, base_url + "/health", log, environment, cwd=repo):
        gaps = asyncio.run(measure(base_url, args.streams, args.prompts, args.baseline_s, prompt))
    print(summary("baseline", gaps.baseline))
    print(summary("load", gaps.load))


if __name__ == "__main__":
    main()
