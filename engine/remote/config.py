"""Settings of a remote engine: a vLLM server or router reached over HTTP."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class RemoteConfig(BaseModel):
    """A vLLM OpenAI-compatible server, or a router in front of several, that generates for one
    model. The server still validates, renders the template and tokenizes itself.

    What the upstream's replicas must run with is written down in `engine.remote`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL of the upstream, e.g. http://127.0.0.1:30000.")
    served_model_name: str = Field(description="The upstream `model` of the base model.")
    tokenizer: str = Field(
        description="Hugging Face id, local directory, or a builtin checkpoint name; must match "
        "the upstream's tokenizer."
    )
    max_model_len: int | None = Field(
        default=None,
        gt=0,
        description="Longest sequence served; default (and upper bound): upstream /v1/models.",
    )
    health_path: str = Field(
        default="/health",
        pattern=r"^/",
        description="What says the upstream can serve: vllm serve's /health, or for "
        "vllm-router its /readiness (200 while one worker is up; its /health is 503 as soon as "
        "any worker is down).",
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the upstream's API key."
    )
    enable_lora: bool = Field(
        default=False, description="Serve LoRA adapters through the upstream's LoRA resolver."
    )
    max_lora_rank: Literal[8, 16, 32, 64] = Field(
        default=32, description="Largest adapter rank the upstream serves (its --max-lora-rank)."
    )
    lora_dir: Path | None = Field(
        default=None,
        description="Where adapters are published for the replicas' filesystem LoRA resolver "
        "(their VLLM_LORA_RESOLVER_CACHE_DIR, e.g. a shared volume); required with enable_lora.",
    )
    base_model: str | None = Field(
        default=None,
        description="The replicas' `--model` value, which their LoRA resolver compares with an "
        "adapter's base_model_name_or_path. Default: the `root` upstream /v1/models reports for "
        "served_model_name, else served_model_name.",
    )
    lora_keep_days: float = Field(
        default=7,
        ge=1 / 24,
        description="Adapters published in lora_dir that no request named for this many days "
        "are removed from it (old versions, deleted finetunes); a later request publishes "
        "them again.",
    )
    zero_adapter: bool = Field(
        default=False,
        description="Send requests without an adapter through an all-zero adapter. Needed for "
        "CPU replicas with LoRA (vLLM applies some batched adapter to requests without one); "
        "their --max-loras must then count one more.",
    )
    max_concurrent_requests: int | None = Field(
        default=None,
        ge=1,
        description="Requests this server sends upstream at once (with `serve --workers N`, "
        "each worker an N-th of them); past it requests are refused with 429 (code 3040). "
        "Default: no limit (the upstream's own queue answers 503 -> 429).",
    )
    start_timeout_s: float = Field(
        default=600,
        gt=0,
        description="How long startup waits for the upstream to list served_model_name.",
    )
    connect_timeout_s: float = Field(
        default=10,
        gt=0,
        description="How long a new connection to the upstream may take; past it the request "
        "is answered 503 (code 3040), as for an upstream that refuses connections.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _lora_needs_a_folder(self) -> "RemoteConfig":
        if self.enable_lora and self.lora_dir is None:
            raise ValueError(
                "enable_lora needs lora_dir: the folder the replicas' LoRA resolver reads "
                "(VLLM_LORA_RESOLVER_CACHE_DIR)"
            )
        if self.zero_adapter and not self.enable_lora:
            raise ValueError("zero_adapter needs enable_lora")
        return self
