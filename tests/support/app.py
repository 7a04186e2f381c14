"""The app under test: its model names, settings, token and URLs."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from engine.config import BuiltinCheckpoint, EngineConfig
from server.settings import ModelSettings, Settings

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

BUILTIN: dict[str, BuiltinCheckpoint] = {
    QWQ: "tiny-qwq-32b",
    R1: "tiny-deepseek-r1-distill-qwen-32b",
}
WORKERS_AI_WINDOW = {QWQ: 24000, R1: 80000}

ClientFactory = Callable[..., TestClient]


def run_url(model: str, account: str = "acct") -> str:
    return f"/client/v4/accounts/{account}/ai/run/{model}"


def served(model: str, max_model_len: int | None = None, lora: bool = False) -> ModelSettings:
    """One model on its tiny checkpoint, with Workers AI's window unless told otherwise."""
    engine = EngineConfig(
        builtin=BUILTIN[model],
        max_model_len=max_model_len or WORKERS_AI_WINDOW[model],
        enable_lora=lora,
    )
    return ModelSettings(name=model, engine=engine)


def lora_models() -> list[ModelSettings]:
    return [served(QWQ, lora=True), served(R1, lora=True)]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "models": [served(QWQ), served(R1)],
        "api_tokens": [TOKEN],
        **overrides,
    }
    return Settings.model_validate(values)
