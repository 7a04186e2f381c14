"""The seam between the server and an inference engine."""

from collections.abc import AsyncGenerator
from typing import Protocol

from engine.types import (
    Adapter,
    CheckpointInfo,
    CheckpointTemplate,
    Delta,
    EngineLoad,
    EngineStatus,
    GenerationParams,
)


class Engine(Protocol):
    """One loaded model.

    `generate` yields deltas until the request finishes. Closing or cancelling the iterator
    aborts the request inside the engine at once. Engine failures are raised as
    `engine.errors.EngineError` subclasses.
    """

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without adding special tokens."""
        ...

    def fewest_tokens(self, text: str) -> int:
        """A floor under len(encode(text)), found without tokenizing (microseconds, where
        tokenizing a long prompt takes a good part of a second): never more than the true
        count, 0 when the tokenizer allows no sound floor (see `engine.token_bytes`)."""
        ...

    def checkpoint_template(self) -> CheckpointTemplate | None:
        """The chat template shipped with the checkpoint, if any."""
        ...

    def checkpoint_info(self) -> CheckpointInfo:
        """The loaded checkpoint and its layer sizes, which LoRA adapters must fit."""
        ...

    def max_model_len(self) -> int:
        """The longest sequence (prompt + output) the engine holds."""
        ...

    async def load_adapter(self, adapter: Adapter) -> None:
        """Make `adapter` ready for `generate`; raises EngineRequestError if the engine
        refuses it. The engine keeps serving other requests either way. Call it before every
        `generate` with `params.adapter` set: it is cheap once the adapter is loaded."""
        ...

    def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]: ...

    def load(self) -> EngineLoad:
        """The requests it holds now and its capacity, known without asking anyone: what the
        server reads before preparing each request."""
        ...

    async def status(self) -> EngineStatus:
        """Its load and its health, which may be asked of the engine (a remote one's upstream):
        what `/health` and `/metrics` report."""
        ...

    async def close(self) -> None: ...
