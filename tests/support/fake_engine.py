"""A scripted engine for unit tests of the HTTP layer. `serve` never runs it."""

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from engine.errors import EngineError
from engine.types import (
    Adapter,
    CheckpointInfo,
    CheckpointTemplate,
    Delta,
    EngineLoad,
    EngineStatus,
    FinishReason,
    GenerationParams,
)


@dataclass
class Call:
    prompt_token_ids: list[int]
    params: GenerationParams
    request_id: str


@dataclass
class FakeEngine:
    """Encodes one token per character and yields `script` one piece per token.

    `fail_at` raises `failure` before yielding that piece; `delay` sleeps before each piece.
    `adapter_failure` is raised by `load_adapter`. The checkpoint has the tiny models' sizes.
    """

    script: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "."])
    delay: float = 0.0
    failure: EngineError | None = None
    fail_at: int = 0
    healthy: bool = True
    calls: list[Call] = field(default_factory=list)
    running: int = 0
    waiting: int = 0  # what `load` and `status` report waiting; nothing here ever waits
    capacity: int | None = None  # what `load` reports; the server's early admission reads it
    aborted: int = 0
    loaded_adapters: list[Adapter] = field(default_factory=list)
    adapter_failure: EngineError | None = None
    model_len: int = 1 << 20  # what `max_model_len` reports; the settings usually set less
    checkpoint: CheckpointInfo = field(
        default_factory=lambda: CheckpointInfo(
            source="fake/tiny-qwen2",
            hidden_size=128,
            intermediate_size=256,
            num_layers=2,
            num_heads=2,
            num_kv_heads=1,
            head_dim=64,
        )
    )

    def encode(self, text: str) -> list[int]:
        return [ord(character) for character in text]

    def fewest_tokens(self, text: str) -> int:
        return len(text)  # one token per character: the floor is the count itself

    def max_model_len(self) -> int:
        return self.model_len

    def checkpoint_info(self) -> CheckpointInfo:
        return self.checkpoint

    async def load_adapter(self, adapter: Adapter) -> None:
        if self.adapter_failure is not None:
            raise self.adapter_failure
        self.loaded_adapters.append(adapter)

    def checkpoint_template(self) -> CheckpointTemplate | None:
        return CheckpointTemplate(
            "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
        )

    async def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        self.calls.append(Call(prompt_token_ids, params, request_id))
        self.running += 1
        pieces = self.script[: params.max_tokens]
        try:
            for index, piece in enumerate(pieces):
                if self.failure is not None and index == self.fail_at:
                    raise self.failure
                if self.delay:
                    await asyncio.sleep(self.delay)
                last = index == len(pieces) - 1
                reason: FinishReason | None = None
                if last:
                    reason = "length" if len(pieces) == params.max_tokens else "stop"
                yield Delta(piece, 1, reason)
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted += 1
            raise
        finally:
            self.running -= 1

    def load(self) -> EngineLoad:
        return EngineLoad(
            running_requests=self.running, waiting_requests=self.waiting, capacity=self.capacity
        )

    async def status(self) -> EngineStatus:
        return EngineStatus(
            healthy=self.healthy,
            running_requests=self.running,
            waiting_requests=self.waiting,
            capacity=self.capacity,
        )

    async def close(self) -> None:
        pass
